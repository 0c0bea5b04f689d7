"""Keys on the running service: two replicas (real apps under uvicorn, one registry, one
prediction store) sharing one keys file. Who may scan for which scanner, who may send
which feedback, rotation without restart, rate limits, and the secure defaults."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers.decisions import assert_served_decision
from helpers.images import png_bytes
from helpers.registry import Registry
from helpers.service import settings_for, thread_server
from helpers.stores import store_rows

from atr.demo_service import issue_keys
from serving.keys import add_key, revoke_key
from serving.rate_limit import RateLimit

KEYS = {"scanner": "k-scan", "inspection": "k-insp", "analyst": "k-anal", "operator": "k-op"}
OTHER_BELT = "k-belt-2"  # a scanner key for belt-2 only


def _ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/ready", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, f"{url} never ready"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.yaml"
    issue_keys(path, ["belt-1"], "t", tokens=KEYS)
    add_key(path, "belt-2", "scanner", ("belt-2",), token=OTHER_BELT)
    return path


@pytest.fixture(scope="module")
def replicas(registry: Registry, keys_file: Path) -> Iterator[tuple[str, str]]:
    settings = settings_for(registry, keys_file=str(keys_file))
    with thread_server(settings) as (first, _), thread_server(settings) as (second, _):
        _ready(first)
        _ready(second)
        yield first, second


def _scan(url: str, key: str | None, item: str, scanner: str = "belt-1") -> httpx.Response:
    headers = {"Content-Type": "image/png", **({"X-API-Key": key} if key else {})}
    return httpx.post(f"{url}/v1/scans", content=png_bytes(), headers=headers, timeout=30,
                      params={"item_id": item, "scanner_id": scanner})


def _stored(registry: Registry, prefix: str) -> list[dict]:
    return [r for r in store_rows(registry) if r["item_id"].startswith(prefix)]


def test_a_scan_needs_a_known_key(replicas: tuple[str, str], registry: Registry) -> None:
    url, _ = replicas
    for key, detail in ((None, "missing X-API-Key"), ("not-a-key", "unknown or revoked")):
        r = _scan(url, key, "nokey-1")
        assert r.status_code == 401 and detail in r.json()["detail"]
        assert "decision" not in r.json() and r.headers["www-authenticate"] == "X-API-Key"
    assert not _stored(registry, "nokey-")  # never decided, never stored
    ok = _scan(url, KEYS["scanner"], "withkey-1")
    assert ok.status_code == 200
    assert_served_decision(ok.json(), registry)


def test_a_key_scans_only_for_its_own_scanners(replicas: tuple[str, str],
                                               registry: Registry) -> None:
    url, _ = replicas
    r = _scan(url, KEYS["scanner"], "foreign-1", scanner="belt-2")
    assert r.status_code == 403 and "decision" not in r.json()
    assert "'belt-2'" in r.json()["detail"] and "t-scanner" in r.json()["detail"]
    assert _scan(url, OTHER_BELT, "foreign-2", scanner="belt-2").status_code == 200
    # a batch with one foreign item is refused whole: no item is decided
    image = base64.b64encode(png_bytes()).decode()
    items = [{"item_id": "foreign-b1", "image_b64": image},
             {"item_id": "foreign-b2", "image_b64": image, "scanner_id": "belt-2"}]
    r = httpx.post(f"{url}/v1/scans/batch", json={"scanner_id": "belt-1", "items": items},
                   headers={"X-API-Key": KEYS["scanner"]}, timeout=30)
    assert r.status_code == 403 and "'belt-2'" in r.json()["detail"]
    assert [x["item_id"] for x in _stored(registry, "foreign-")] == ["foreign-2"]


def test_roles_decide_the_calls(replicas: tuple[str, str], registry: Registry) -> None:
    url, _ = replicas
    assert _scan(url, KEYS["scanner"], "role-1").status_code == 200
    r = _scan(url, KEYS["inspection"], "role-2")
    assert r.status_code == 403 and "role 'inspection'" in r.json()["detail"]
    verdict = {"item_id": "role-1", "labels": {"knife": 1}, "source": "inspection",
               "who": "officer-1", "at": "2026-12-01T10:00:00Z"}

    def feedback(key: str, **change: str) -> httpx.Response:
        return httpx.post(f"{url}/v1/feedback", json={**verdict, **change}, timeout=30,
                          headers={"X-API-Key": key})

    before = len(store_rows(registry, "feedback"))
    for key in (KEYS["scanner"], KEYS["operator"]):
        assert feedback(key).status_code == 403
    r = feedback(KEYS["analyst"])  # an analyst key may not send an inspection outcome
    assert r.status_code == 403 and "source 'analyst' only" in r.json()["detail"]
    assert len(store_rows(registry, "feedback")) == before
    assert feedback(KEYS["inspection"]).status_code == 201
    assert feedback(KEYS["analyst"], source="analyst").status_code == 201
    change = {"action": "enter", "by": "alice"}
    r = httpx.post(f"{url}/v1/scanners/belt-9/safe-mode", json=change, timeout=30,
                   headers={"X-API-Key": KEYS["scanner"]})
    assert r.status_code == 403 and "operator" in r.json()["detail"]


def test_rotation_reaches_both_replicas_within_a_second(replicas: tuple[str, str],
                                                        keys_file: Path) -> None:
    token, _ = add_key(keys_file, "belt-1-new", "scanner", ("belt-1",))
    started = time.monotonic()
    for url in replicas:
        while _scan(url, token, f"rot-{url[-5:]}").status_code != 200:
            assert time.monotonic() - started < 2.0, "new key not accepted within ~1 s"
            time.sleep(0.05)
    revoke_key(keys_file, "belt-1-new")
    started = time.monotonic()
    for url in replicas:
        while (r := _scan(url, token, f"rot-rev-{url[-5:]}")).status_code != 401:
            assert r.status_code == 200
            assert time.monotonic() - started < 2.0, "revoked key still accepted after ~1 s"
            time.sleep(0.05)


def test_rate_limit_per_key_answers_429_with_retry_after(registry: Registry,
                                                         keys_file: Path) -> None:
    settings = settings_for(registry, keys_file=str(keys_file),
                            rate_limits={"scanner": RateLimit(rate=0.5, burst=2)})
    with thread_server(settings) as (url, _):
        _ready(url)
        codes = [_scan(url, KEYS["scanner"], f"rl-{i}").status_code for i in range(2)]
        r = _scan(url, KEYS["scanner"], "rl-2")
        assert codes == [200, 200] and r.status_code == 429
        assert r.headers["retry-after"] in ("1", "2") and "decision" not in r.json()
        assert "t-scanner" in r.json()["detail"]
        assert _scan(url, OTHER_BELT, "rl-other", scanner="belt-2").status_code == 200
        image = base64.b64encode(png_bytes()).decode()
        items = [{"item_id": f"rl-b{i}", "image_b64": image} for i in range(3)]
        r = httpx.post(f"{url}/v1/scans/batch", json={"scanner_id": "belt-2", "items": items},
                       headers={"X-API-Key": OTHER_BELT}, timeout=30)
        assert r.status_code == 429 and "exceed the burst" in r.json()["detail"]
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert 'atr_rate_limited_total{key_name="t-scanner"} 1.0' in metrics
        assert 'atr_rate_limited_total{key_name="belt-2"} 1.0' in metrics


def test_secure_by_default_and_fail_closed(registry: Registry, tmp_path: Path) -> None:
    broken = tmp_path / "keys.yaml"
    broken.write_text("keys: [{name: x, role: boss}]\n")
    with thread_server(settings_for(registry, keys_file=None)) as (open_url, _), \
            thread_server(settings_for(registry, keys_file=str(broken))) as (broken_url, _):
        _ready(open_url)
        r = _scan(open_url, KEYS["scanner"], "default-1")
        assert r.status_code == 401 and "no key registry configured" in r.json()["detail"]
        r = _scan(broken_url, KEYS["scanner"], "default-2")
        assert r.status_code == 503 and "key_registry_error" in r.json()["detail"]
        assert "decision" not in r.json()
        metrics = httpx.get(f"{broken_url}/metrics", timeout=10).text
        assert 'atr_auth_refused_total{reason="registry_error"} 1.0' in metrics
    assert not _stored(registry, "default-")


def test_openapi_declares_bodies_parameters_and_the_key(replicas: tuple[str, str]) -> None:
    url, _ = replicas
    doc = httpx.get(f"{url}/openapi.json", timeout=10).json()
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        **doc["components"]["securitySchemes"]["ApiKey"], "type": "apiKey", "in": "header",
        "name": "X-API-Key"}
    scan = doc["paths"]["/v1/scans"]["post"]
    assert scan["security"] == [{"ApiKey": []}]
    content = scan["requestBody"]["content"]
    assert {"multipart/form-data", "image/png", "application/octet-stream"} <= set(content)
    form = doc["components"]["schemas"][content["multipart/form-data"]["schema"]["$ref"]
                                        .rsplit("/", 1)[1]]
    assert set(form["properties"]) == {"file", "item_id", "scanner_id"}
    assert {(p["name"], p["in"]) for p in scan["parameters"]} >= {
        ("item_id", "query"), ("scanner_id", "query"), ("X-Item-Id", "header")}
    batch = doc["paths"]["/v1/scans/batch"]["post"]["requestBody"]["content"]
    assert batch["application/json"]["schema"]["required"] == ["items"]
    feedback = doc["paths"]["/v1/feedback"]["post"]
    assert feedback["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/FeedbackIn") and feedback["security"] == [{"ApiKey": []}]
    safe = doc["paths"]["/v1/scanners/{scanner_id}/safe-mode"]["post"]
    assert [(p["name"], p["in"]) for p in safe["parameters"]] == [("scanner_id", "path")]
    assert httpx.get(f"{url}/docs", timeout=10).status_code == 200
