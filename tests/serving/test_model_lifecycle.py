"""Approval, rollback, refused candidates, no model and shadow mode, on a real registry:
the alias moves (as a reviewer moves it) while a client keeps sending parcels."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from helpers.decisions import assert_failsafe, assert_policy_decision, assert_served_decision
from helpers.images import png_bytes
from helpers.registry import NAME, Registry
from helpers.service import SCAN_HEADERS, Server
from helpers.stores import store_rows

from atr.policy.decision import Policy

POLL = "serve.poll_seconds=0.2"


class Client(threading.Thread):
    """Sends scans back to back and keeps every response (or transport error)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.results = url, threading.Event(), []

    def run(self) -> None:
        with httpx.Client(timeout=30) as http:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    r = http.post(f"{self.url}/v1/scans", content=png_bytes(),
                                  params={"item_id": f"swap-{n}", "scanner_id": "S1"},
                                  headers={"Content-Type": "image/png", **SCAN_HEADERS})
                    self.results.append((r.status_code, r.json()))
                except Exception as exc:  # noqa: BLE001 - a failure is what the test counts
                    self.results.append((0, {"error": repr(exc)}))

    def versions(self) -> list[str | None]:
        return [(body.get("model") or {}).get("version") for _, body in self.results]


def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _served(server: Server) -> str | None:
    r = httpx.get(f"{server.url}/v1/model", timeout=10)
    return r.json().get("version") if r.status_code == 200 else None


@pytest.fixture(scope="module")
def server(registry: Registry) -> Server:
    srv = Server(registry, [POLL]).start()
    yield srv
    srv.stop()


def test_approve_then_roll_back_under_load_without_a_failed_request(
        server: Server, registry: Registry) -> None:
    client = Client(server.url)
    client.start()
    try:
        _until(lambda: client.versions().count("1") >= 5)
        registry.set_alias("champion", "2")  # the approval
        _until(lambda: _served(server) == "2")
        _until(lambda: client.versions().count("2") >= 5)
        registry.set_alias("champion", "1")  # the rollback
        _until(lambda: _served(server) == "1")
        mark = len(client.results)
        _until(lambda: client.versions()[mark:].count("1") >= 5)
    finally:
        client.stop.set()
        client.join(30)
    failed = [(s, b) for s, b in client.results if s != 200 or b.get("decision") is None]
    assert not failed, failed[:3]
    for _, body in client.results:  # each decided by the policy of the version that answered
        assert_served_decision(body, registry)
    versions = client.versions()
    # 1...1 2...2 1...1: one switch each way, no flapping, no request without a model.
    changes = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
    assert changes == ["1", "2", "1"], changes
    stored = {r["request_id"]: r["model_version"] for r in store_rows(registry)}
    assert all(stored[b["request_id"]] == b["model"]["version"] for _, b in client.results)


def test_tampered_candidate_is_refused_and_the_old_model_keeps_serving(
        server: Server, registry: Registry, package_template) -> None:
    version = registry.register(package_template)
    registry.client().set_model_version_tag(NAME, version, "sha256.model.onnx", "0" * 64)
    registry.set_alias("champion", version)
    try:
        _until(lambda: 'atr_model_swap_failures_total{cause="checksum",role="champion"} 1.0'
               in httpx.get(f"{server.url}/metrics").text)
        info = httpx.get(f"{server.url}/v1/model").json()
        assert info["version"] == "1" and f"v{version}" in info["last_error"]
        assert "checksum" in info["last_error"]
        r = httpx.post(f"{server.url}/v1/scans", content=png_bytes(), timeout=30,
                       params={"item_id": "after-refusal", "scanner_id": "S1"},
                       headers={"Content-Type": "image/png", **SCAN_HEADERS})
        assert r.status_code == 200 and r.json()["model"]["version"] == "1"
        assert_served_decision(r.json(), registry)
    finally:
        registry.set_alias("champion", "1")


def test_an_alias_moved_to_an_unapproved_version_is_not_served(
        server: Server, registry: Registry, package_template) -> None:
    # @champion moved with no approval record (straight into the store, past `atr approve`
    # and the auth app): refused before any download, the approved model keeps serving
    version = registry.register(package_template)
    registry.move_alias_unapproved("champion", version)
    try:
        _until(lambda: 'atr_model_swap_failures_total{cause="unapproved",role="champion"} 1.0'
               in httpx.get(f"{server.url}/metrics").text)
        info = httpx.get(f"{server.url}/v1/model").json()
        assert info["version"] == "1" and "no approval record" in info["last_error"]
        assert httpx.get(f"{server.url}/ready").status_code == 200
        r = httpx.post(f"{server.url}/v1/scans", content=png_bytes(), timeout=30,
                       params={"item_id": "unapproved-alias", "scanner_id": "S1"},
                       headers={"Content-Type": "image/png", **SCAN_HEADERS})
        assert r.status_code == 200 and r.json()["model"]["version"] == "1"
        # approved for another alias is no approval for this one
        registry.client().set_model_version_tag(NAME, version, "approved_by", "rita")
        registry.client().set_model_version_tag(NAME, version, "approval.alias", "challenger")
        time.sleep(1.0)  # five polls
        assert _served(server) == "1"
        # the record written after the move (as the auth app does): served at the next poll
        registry.set_alias("champion", version)
        _until(lambda: _served(server) == version, timeout=10)
        assert 'cause="unapproved",role="champion"} 1.0' in httpx.get(
            f"{server.url}/metrics").text  # one event per version, not one per poll
    finally:
        registry.set_alias("champion", "1")
        _until(lambda: _served(server) == "1")


def test_shadow_mode_stores_the_challenger_without_changing_the_decision(
        registry: Registry) -> None:
    registry.set_alias("challenger", "2")
    srv = Server(registry, [POLL, "serve.shadow=true"]).start()
    try:
        _until(lambda: (httpx.get(f"{srv.url}/v1/model").json().get("shadow") or {})
               .get("version") == "2")
        r = httpx.post(f"{srv.url}/v1/scans", content=png_bytes(), timeout=30,
                       params={"item_id": "shadowed", "scanner_id": "S1"},
                       headers={"Content-Type": "image/png", **SCAN_HEADERS})
    finally:
        srv.stop()
    assert r.status_code == 200 and r.json()["model"]["version"] == "1"
    assert_served_decision(r.json(), registry)
    row = [x for x in store_rows(registry) if x["request_id"] == r.json()["request_id"]][0]
    shadow = json.loads(row["shadow"])
    assert shadow["version"] == "2" and set(shadow["scores"]) == set(r.json()["scores"])
    # the challenger's verdict is its own policy's decision of its own scores
    # the challenger's verdict is its policy alone: the line's rules act on the champion's
    assert_policy_decision(shadow, Policy.from_dict(registry.policy_json("2")),
                           line_rules=False)


def test_no_model_means_not_ready_and_inspect_until_a_first_approval(
        empty_registry: Registry, package_template) -> None:
    srv = Server(empty_registry, [POLL]).start(wait_ready=False)
    try:
        assert httpx.get(f"{srv.url}/ready").status_code == 503
        assert httpx.get(f"{srv.url}/v1/model").status_code == 503
        r = httpx.post(f"{srv.url}/v1/scans", content=png_bytes(), timeout=30,
                       params={"item_id": "early", "scanner_id": "S1"},
                       headers={"Content-Type": "image/png", **SCAN_HEADERS})
        assert r.status_code == 200
        assert_failsafe(r.json(), "no_model")
        assert r.json()["model"] is None
        rows = store_rows(empty_registry)
        assert [(x["item_id"], x["reason"]) for x in rows] == [("early", "no_model")]
        version = empty_registry.register(package_template)
        empty_registry.set_alias("champion", version)
        _until(lambda: httpx.get(f"{srv.url}/ready").status_code == 200)
        r = httpx.post(f"{srv.url}/v1/scans", content=png_bytes(), timeout=30,
                       params={"item_id": "later", "scanner_id": "S1"},
                       headers={"Content-Type": "image/png", **SCAN_HEADERS})
        assert r.json()["model"]["version"] == version
        assert_served_decision(r.json(), empty_registry)
    finally:
        srv.stop()
