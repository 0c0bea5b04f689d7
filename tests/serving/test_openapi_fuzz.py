"""Schemathesis against the real service (uvicorn on loopback, a registered tiny model as
@champion whose policy CLEARs every item it scores: the worst case, where only the
service's fail-safe stands between a malformed input and a CLEAR), driven by the
service's own OpenAPI schema.

Every generated request (schema-valid and schema-violating: both generation modes) is
sent with a key of the operation's role, and most scanner ids are pinned to the key's
scanner, so the fuzzer gets past the key check into body parsing and decisions. Checks:

- no 5xx without a decision body: a 5xx is only ever a fail-safe INSPECT that was not
  acknowledged as stored (JSON with a `decision`), never a bare error;
- every 4xx is today's error body, JSON `{"detail": "<named problem>"}`;
- no CLEAR for a malformed input. Malformed, precisely: a request the contract refuses
  (item_id/scanner_id missing, blank or too long, a Content-Type not accepted, a body
  that is not JSON or not base64 where those are required) must get a 4xx and no decision
  at all; an item whose image bytes do not decode to an image within the pixel bound (not
  an image, truncated, empty, a pixel bomb, over max_upload_bytes) may only be INSPECTed.
  So any CLEAR must answer a 200 request for an item whose bytes decode, under its own
  item_id.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import io
import json
import time
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from helpers.images import png_bytes
from helpers.packages import build_package
from helpers.registry import registry_at
from helpers.service import (
    ANALYST_KEY,
    INSPECTION_KEY,
    OPERATOR_KEY,
    SCAN_KEY,
    settings_for,
    thread_server,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.transport.serialization import Binary

from atr.package.decode import ImageDecodeError, decode_image
from serving.rate_limit import RateLimit

SCANNER = "parcel_160kv"  # one of the test scan key's scanners (helpers.service)
MAX_UPLOAD = 200_000


def _bomb() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buf, format="PNG")  # 81 MP > the 50 MP bound
    return buf.getvalue()


GOOD = [png_bytes((200, 120 + i, 40)) for i in range(0, 60, 20)] + [png_bytes((10, 80, 200))]
# Real images (the tiny model CLEARs some) and the ways an upload goes wrong.
IMAGES = st.one_of(
    st.sampled_from(GOOD),
    st.tuples(st.sampled_from(GOOD), st.integers(0, 200)).map(lambda g: g[0][: g[1]]),
    st.sampled_from([_bomb(), b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, b"\xff" * (MAX_UPLOAD + 1)]),
    st.binary(max_size=256),
)
# Every image the fuzzer sends is drawn from IMAGES: raw bodies, multipart files
# (format binary) and JSON batch items (format byte: base64).
schemathesis.openapi.media_type("image/png", IMAGES)
schemathesis.openapi.format("binary", IMAGES.map(Binary))
schemathesis.openapi.format("byte", IMAGES.map(lambda b: base64.b64encode(b).decode()))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    registry = registry_at(tmp_path_factory.mktemp("fuzz-runtime"))
    registry.register(build_package(tmp_path_factory.mktemp("fuzz-pkg") / "package", seed=3,
                                    clear_threshold=0.0, inspect_threshold=0.99))
    registry.set_alias("champion", "1")
    # the production upload path, with a small upload limit so that "too large" is reachable
    # ... and the operator's limit lifted: the fuzzer changes safe mode far faster than people
    settings = settings_for(registry, max_upload_bytes=MAX_UPLOAD,
                            rate_limits={"operator": RateLimit(1000.0, 1000)})
    with thread_server(settings) as (url, _):
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "service never ready"
            time.sleep(0.1)
        yield url


@pytest.fixture(scope="module")
def api_schema(api: str) -> Any:
    """The live service's own schema (what /openapi.json says, not a copy)."""
    return schemathesis.openapi.from_url(f"{api}/openapi.json")


# The POST operations and the key of each one's role (feedback: the verdict's source's).
KEY_OF = {"/v1/scans": SCAN_KEY, "/v1/scans/batch": SCAN_KEY, "/v1/feedback": ANALYST_KEY,
          "/v1/scanners/{scanner_id}/safe-mode": OPERATOR_KEY}


def _key(case: Any) -> str:
    body = case.body
    if case.operation.path == "/v1/feedback" and isinstance(body, dict) \
            and body.get("source") == "inspection":
        return INSPECTION_KEY
    return KEY_OF[case.operation.path]
EXAMPLES = 40  # per operation and generation mode: ~300 requests, ~15 s on 2 cores


def _pin(value: Any) -> Any:
    """A generated scanner id, most often replaced by the key's own scanner."""
    if isinstance(value, str) and value.strip() and zlib.crc32(value.encode()) % 5:
        return SCANNER
    return value


def _pin_scanners(case: Any) -> None:
    """Most generated scanner ids become the key's scanner (and a JSON batch without any
    gets it), so that most requests reach the decision; the rest are refused (403/422)."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("items"), list) \
            and "scanner_id" not in body and zlib.crc32(repr(body).encode()) % 5:
        body["scanner_id"] = SCANNER
    if isinstance(case.query, dict) and "scanner_id" in case.query:
        case.query["scanner_id"] = _pin(case.query["scanner_id"])
    if isinstance(case.headers, dict) and "X-Scanner-Id" in case.headers:
        case.headers["X-Scanner-Id"] = _pin(case.headers["X-Scanner-Id"])
    if isinstance(body, dict):
        if "scanner_id" in body:
            body["scanner_id"] = _pin(body["scanner_id"])
        if isinstance(body.get("scanner_ids"), list):
            body["scanner_ids"] = [_pin(s) for s in body["scanner_ids"]]
        items = body.get("items")  # an invalid case may make it any JSON value
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and "scanner_id" in item:
                item["scanner_id"] = _pin(item["scanner_id"])


def _parts(content_type: str, body: bytes, name: str) -> list[bytes]:
    """The payloads of the multipart form's `name` parts, in order."""
    message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body,
                                       policy=email.policy.HTTP)
    if not message.is_multipart():
        return []
    return [part.get_payload(decode=True) or b"" for part in message.iter_parts()
            if part.get_param("name", header="content-disposition") == name]


def _images(path: str, request: Any) -> list[bytes | None]:
    """The image bytes the request actually sent (read back from the wire, not from the
    generated case), one per item, in the order the reply lists them."""
    content_type = request.headers.get("content-type", "")
    body = request.body or b""
    body = body.encode() if isinstance(body, str) else bytes(body)
    if content_type.startswith("multipart/form-data"):
        return list(_parts(content_type, body, "file" if path == "/v1/scans" else "files"))
    if path == "/v1/scans":
        return [body]
    doc = json.loads(body)
    items = doc.get("items") if isinstance(doc, dict) else None
    out: list[bytes | None] = []
    if not isinstance(items, list):
        return out
    for it in items:
        try:
            out.append(base64.b64decode(str(it.get("image_b64")), validate=True))
        except (AttributeError, binascii.Error, ValueError):
            out.append(None)
    return out


def _decodes(data: bytes | None) -> bool:
    if data is None or len(data) > MAX_UPLOAD:
        return False
    try:
        decode_image(data)
    except ImageDecodeError:
        return False
    return True


def _check(case: Any, response: Any) -> None:
    status = response.status_code
    try:
        doc = response.json()
    except ValueError:
        raise AssertionError(f"{status}: not a JSON body: {response.text[:200]!r}") from None
    decisions = doc if isinstance(doc, list) else [doc] if "decision" in doc else []
    if status >= 500:
        assert decisions and all("decision" in d for d in decisions), \
            f"{status} without a decision body: {doc}"
        assert all(d["decision"] == "INSPECT" or d.get("stored") for d in decisions), doc
    elif status >= 400:
        assert isinstance(doc, dict) and isinstance(doc.get("detail"), str) and doc["detail"], \
            f"{status} without a named problem: {doc}"
        assert "decision" not in doc, f"a refused request got a decision: {doc}"
    if status not in (200, 503):
        return
    images = _images(case.operation.path, response.request)
    assert len(images) == len(decisions), f"{len(decisions)} decisions for {len(images)} items"
    for d, data in zip(decisions, images, strict=True):
        item = (d["scanner_id"], d["item_id"])
        if d.get("replay"):  # a resent item_id: the stored decision of its first request
            assert d["decision"] != "CLEAR" or FIRST_SEEN.get(item) is True, \
                f"a replayed CLEAR whose first request was not a decodable image: {d}"
            continue
        FIRST_SEEN.setdefault(item, _decodes(data))
        if d["decision"] == "CLEAR":
            assert status == 200 and _decodes(data), f"CLEAR for an undecodable image: {d}"


# (scanner_id, item_id) -> whether the image of the request that first decided it decodes
# (a repeated item_id is answered with the stored decision: idempotent resends).
FIRST_SEEN: dict[tuple[str, str], bool] = {}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
@pytest.mark.parametrize("path", list(KEY_OF))
def test_fuzzed_requests_never_clear_malformed_input_or_fail_bare(
        path: str, mode: GenerationMode, api: str, api_schema: Any) -> None:
    # Hypothesis drives the operation's strategy directly: schemathesis' pytest loader
    # (schemathesis.pytest.from_fixture) does not run under pytest 9 in 4.32.
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=api_schema[path]["POST"].as_strategy(mode))
    def fuzz(case: Any) -> None:
        case.headers = {**(case.headers or {}), "X-API-Key": _key(case)}
        _pin_scanners(case)
        _check(case, case.call(base_url=api, timeout=30))

    fuzz()
