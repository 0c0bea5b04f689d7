"""The sorting line's calls against a real `atr serve` process on a real MLflow registry:
decisions, batches, fail-safe uploads, malformed requests, the prediction store."""

from __future__ import annotations

import base64
import io
import json

import httpx
import pytest
from helpers.decisions import assert_failsafe, assert_served_decision
from helpers.images import png_bytes
from helpers.registry import NAME, Registry
from helpers.service import ANALYST_KEY, INSPECTION_KEY, SCAN_HEADERS, Server
from helpers.stores import store_rows

from atr.store.image_store import ImageStore


@pytest.fixture(scope="module")
def server(registry: Registry) -> Server:
    srv = Server(registry, ["serve.max_upload_bytes=200000"]).start()
    yield srv
    srv.stop()


def _raw(server: Server, data: bytes, item: str, ctype: str = "image/png", **kw) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/scans", content=data, timeout=30,
                      params={"item_id": item, "scanner_id": "S1"},
                      headers={"Content-Type": ctype, **SCAN_HEADERS}, **kw)


def _decided(server: Server, registry: Registry, item: str) -> dict:
    """A good upload, answered 200 with the served policy's decision of its scores."""
    r = _raw(server, png_bytes(), item)
    assert r.status_code == 200, r.text
    assert_served_decision(r.json(), registry)
    return r.json()


def _row(registry: Registry, request_id: str) -> dict:
    rows = [r for r in store_rows(registry) if r["request_id"] == request_id]
    assert len(rows) == 1, f"{request_id} stored {len(rows)} times"
    return rows[0]


def test_good_image_raw_body_is_decided_and_stored(server: Server, registry: Registry) -> None:
    r = _raw(server, png_bytes(), "item-raw-1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert_served_decision(body, registry)
    assert body["item_id"] == "item-raw-1"
    assert body["scanner_id"] == "S1" and body["model"] == {"name": NAME, "version": "1"}
    assert set(body["scores"]) >= {"paper_only", "firearm"}
    assert all(0.0 <= p <= 1.0 for p in body["scores"].values())
    assert body["reason"] and body["latency_ms"] > 0 and body["stored"] is True
    row = _row(registry, body["request_id"])
    assert row["decision"] == body["decision"] and row["model_version"] == "1"
    assert json.loads(row["scores"]) == body["scores"]
    assert len(json.loads(row["embedding"])) == 8  # the tiny net's full 8-d embedding
    assert set(json.loads(row["image_stats"])) >= {"brightness", "orange_share"}
    stored = ImageStore(registry.root / "images").get(row["image_ref"])
    assert stored == png_bytes() and row["image_ref"].endswith(".png")


def test_headers_and_multipart_forms(server: Server, registry: Registry) -> None:
    r = httpx.post(f"{server.url}/v1/scans", content=png_bytes((10, 80, 200)), timeout=30,
                   headers={"Content-Type": "application/octet-stream", **SCAN_HEADERS,
                            "X-Item-Id": "item-hdr", "X-Scanner-Id": "S2"})
    assert r.status_code == 200 and r.json()["item_id"] == "item-hdr"
    assert r.json()["scanner_id"] == "S2"
    assert_served_decision(r.json(), registry)
    r = httpx.post(f"{server.url}/v1/scans", timeout=30,
                   files={"file": ("x.png", png_bytes(), "image/png")},
                   data={"item_id": "item-form", "scanner_id": "S3"}, headers=SCAN_HEADERS)
    assert r.status_code == 200 and r.json()["item_id"] == "item-form"
    assert_served_decision(r.json(), registry)


def test_batch_multipart_and_json(server: Server, registry: Registry) -> None:
    files = [("files", (f"{i}.png", png_bytes((i * 60, 100, 50)), "image/png")) for i in range(3)]
    data = {"item_ids": ["b-1", "b-2", "b-3"], "scanner_id": "S4"}
    r = httpx.post(f"{server.url}/v1/scans/batch", files=files, data=data, timeout=30,
                   headers=SCAN_HEADERS)
    assert r.status_code == 200, r.text
    assert [x["item_id"] for x in r.json()] == ["b-1", "b-2", "b-3"]
    assert all(x["model"]["version"] == "1" for x in r.json())
    for x in r.json():
        assert_served_decision(x, registry)
    items = [{"item_id": "j-1", "image_b64": base64.b64encode(png_bytes()).decode()},
             {"item_id": "j-2", "image_b64": base64.b64encode(b"not an image").decode()}]
    r = httpx.post(f"{server.url}/v1/scans/batch", json={"scanner_id": "S5", "items": items},
                   timeout=30, headers=SCAN_HEADERS)
    assert r.status_code == 200, r.text
    good, bad = r.json()
    assert_served_decision(good, registry)
    assert_failsafe(bad, "image_unreadable")
    for x in r.json():
        assert _row(registry, x["request_id"])["decision"] == x["decision"]


def _bomb() -> bytes:
    """A small PNG declaring 6000 x 6000 pixels (36 M) > the 30 M limit set below."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (6000, 6000)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "image_unreadable"),
    (b"hello, I am a text file", "image_unreadable"),
    (png_bytes()[:60], "image_unreadable"),                # truncated PNG
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 500, "image_unreadable"),  # header then garbage
    (b"\xff" * 300_000, "image_too_large"),               # over serve.max_upload_bytes
])
def test_bad_uploads_are_inspected_with_reason(server: Server, registry: Registry,
                                               data: bytes, reason: str) -> None:
    r = _raw(server, data, f"bad-{reason}-{len(data)}")
    assert r.status_code == 200, r.text
    assert_failsafe(r.json(), reason)
    row = _row(registry, r.json()["request_id"])
    assert (row["decision"], row["reason"]) == ("INSPECT", reason)


def test_scoring_thread_decodes_when_decode_ahead_is_off(registry: Registry) -> None:
    # serve.decode_ahead=false: the scoring thread decodes, as before; same answers.
    srv = Server(registry, ["serve.decode_ahead=false"]).start()
    try:
        good, bad = _raw(srv, png_bytes(), "no-ahead-good"), _raw(srv, b"junk", "no-ahead-bad")
    finally:
        srv.stop()
    assert good.status_code == 200
    assert_served_decision(good.json(), registry)
    assert set(json.loads(_row(registry, good.json()["request_id"])["image_stats"])) >= {
        "brightness"}
    assert_failsafe(bad.json(), "image_unreadable")


def test_pixel_bomb_is_image_too_large(registry: Registry) -> None:
    srv = Server(registry, ["serve.max_pixels=30000000"]).start()
    try:
        r = _raw(srv, _bomb(), "bomb-1")
    finally:
        srv.stop()
    assert_failsafe(r.json(), "image_too_large")


@pytest.mark.parametrize(("kwargs", "status", "field"), [
    ({"params": {"scanner_id": "S1"}}, 422, "item_id"),
    ({"params": {"item_id": "x"}}, 422, "scanner_id"),
    ({"params": {"item_id": "x", "scanner_id": "S"}, "ctype": "text/plain"}, 415, "Content-Type"),
])
def test_malformed_scan_requests_name_the_field(server: Server, kwargs: dict, status: int,
                                                field: str) -> None:
    r = httpx.post(f"{server.url}/v1/scans", content=png_bytes(), params=kwargs["params"],
                   headers={"Content-Type": kwargs.get("ctype", "image/png"), **SCAN_HEADERS},
                   timeout=30)
    assert r.status_code == status and field in r.json()["detail"]


def test_malformed_batches(server: Server) -> None:
    r = httpx.post(f"{server.url}/v1/scans/batch", content=b"{not json",
                   headers={"Content-Type": "application/json", **SCAN_HEADERS}, timeout=30)
    assert r.status_code == 400 and "JSON" in r.json()["detail"]
    r = httpx.post(f"{server.url}/v1/scans/batch", json={"items": [{"item_id": "a"}]}, timeout=30,
                   headers=SCAN_HEADERS)
    assert r.status_code == 422 and "items[0]" in r.json()["detail"]
    r = httpx.post(f"{server.url}/v1/scans", timeout=30, data={"item_id": "a", "scanner_id": "b"},
                   files={"other": ("x.png", b"x", "image/png")}, headers=SCAN_HEADERS)
    assert r.status_code == 422 and "'file'" in r.json()["detail"]


def test_model_endpoint_reports_verified_checksums(server: Server, registry: Registry) -> None:
    r = httpx.get(f"{server.url}/v1/model", timeout=10)
    assert r.status_code == 200
    info = r.json()
    assert (info["name"], info["version"], info["alias"]) == (NAME, "1", "champion")
    tags = registry.client().get_model_version(NAME, "1").tags
    assert info["sha256"]["model.onnx"] == tags["sha256.model.onnx"]
    assert info["loaded_at"] and info["shadow"] is None
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert httpx.get(f"{server.url}/ready").status_code == 200


def test_metrics_count_requests_decisions_and_failsafes(server: Server,
                                                         registry: Registry) -> None:
    _decided(server, registry, "m-1")
    assert_failsafe(_raw(server, b"junk", "m-2").json(), "image_unreadable")
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'atr_requests_total{endpoint="/v1/scans",status="200"}' in text
    assert 'atr_decisions_total{decision="INSPECT"}' in text
    assert 'atr_failsafe_total{reason="image_unreadable"}' in text
    assert 'atr_model_info{name="atr-screening",role="champion",version="1"} 1.0' in text
    assert 'atr_model_swaps_total{role="champion"} 1.0' in text
    assert "atr_request_latency_seconds_bucket" in text


def _feedback(server: Server, body: dict, key: str | None = "") -> httpx.Response:
    """POST /v1/feedback with `key` ("": the key of the body's source's role)."""
    if key == "":
        key = ANALYST_KEY if body.get("source") == "analyst" else INSPECTION_KEY
    headers = {"X-API-Key": key} if key is not None else {}
    return httpx.post(f"{server.url}/v1/feedback", json=body, headers=headers, timeout=30)


def _feedback_rows(registry: Registry) -> list[dict]:
    return store_rows(registry, "feedback")


FEEDBACK = {"item_id": "fb-1", "labels": {"knife": 1, "document": 0}, "source": "inspection",
            "who": "officer-17", "at": "2026-11-25T10:00:00Z"}


def test_feedback_needs_a_valid_key(server: Server, registry: Registry) -> None:
    _decided(server, registry, "fb-1")
    before = len(_feedback_rows(registry))
    assert _feedback(server, FEEDBACK, key=None).status_code == 401
    assert _feedback(server, FEEDBACK, key="wrong").status_code == 401
    assert len(_feedback_rows(registry)) == before


def test_feedback_unknown_item_or_class_writes_nothing(server: Server, registry: Registry) -> None:
    _decided(server, registry, "fb-1")
    before = len(_feedback_rows(registry))
    r = _feedback(server, {**FEEDBACK, "item_id": "never-scanned"})
    assert r.status_code == 404 and "never-scanned" in r.json()["detail"]
    r = _feedback(server, {**FEEDBACK, "labels": {"knife": 1, "banana": 1}})
    assert r.status_code == 422 and "labels.banana" in r.json()["detail"]
    r = _feedback(server, {**FEEDBACK, "labels": {"knife": 2}})
    assert r.status_code == 422 and "labels.knife" in r.json()["detail"]
    r = _feedback(server, {**FEEDBACK, "source": "rumour"})
    assert r.status_code == 422 and "source" in r.json()["detail"]
    assert len(_feedback_rows(registry)) == before


def test_feedback_is_stored_and_joins_the_prediction(server: Server, registry: Registry) -> None:
    _decided(server, registry, "fb-2")
    r = _feedback(server, {**FEEDBACK, "item_id": "fb-2", "source": "analyst",
                           "labels": {"knife": 1, "paper_only": 0}})
    assert r.status_code == 201, r.text
    row = [f for f in _feedback_rows(registry) if f["id"] == r.json()["feedback_id"]][0]
    assert row["item_id"] == "fb-2" and row["source"] == "analyst" and row["who"] == "officer-17"
    # a knife settles both truths: not paper-only, not threat-free (derived, stored)
    assert json.loads(row["labels"]) == {"knife": 1, "paper_only": 0, "no_threat": 0}
    assert any(p["item_id"] == "fb-2" for p in store_rows(registry))
