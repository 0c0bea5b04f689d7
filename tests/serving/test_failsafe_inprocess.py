"""Faults that a real model does not produce on demand — a slow model, a crashing model,
NaN scores, a store that refuses writes — injected into a real app under uvicorn."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from helpers.decisions import assert_failsafe, assert_policy_decision
from helpers.images import png_bytes
from helpers.registry import Registry
from helpers.service import SCAN_HEADERS, settings_for, thread_server
from helpers.stores import store_rows

from atr.package.preprocess import PreprocessSpec
from atr.policy.decision import Policy
from atr.policy.taxonomy import default_taxonomy
from serving.model_source import LoadedModel


class StubScorer:
    """Stands in for OnnxScorer: `behaviour` is 'slow', 'crash' or 'nan'."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.taxonomy = default_taxonomy()
        self.outputs = self.taxonomy.model_outputs
        self.preprocess = PreprocessSpec(input_size=32)

    def score_images(self, images: list) -> tuple[np.ndarray, np.ndarray]:
        n = len(images)
        if self.behaviour == "slow":
            time.sleep(0.8)
        if self.behaviour == "crash":
            raise RuntimeError("ONNX Runtime exploded")
        value = np.nan if self.behaviour == "nan" else 0.1
        return np.full((n, len(self.outputs)), value, np.float32), np.zeros((n, 4), np.float32)


OUTPUTS = default_taxonomy().model_outputs
STUB_POLICY = Policy(outputs=OUTPUTS, clear_threshold=0.5,
                     inspect_thresholds=dict.fromkeys(OUTPUTS[1:], 0.5))


def _stub(behaviour: str) -> LoadedModel:
    return LoadedModel(name="stub", version=behaviour, alias="champion",
                       scorer=StubScorer(behaviour), policy=STUB_POLICY,  # type: ignore[arg-type]
                       sha256={}, max_pixels=10_000_000)


@pytest.fixture
def app_with(empty_registry: Registry) -> Iterator:
    """Start an app on an empty registry (the poller keeps what we inject), inject a stub."""
    servers = []

    def start(behaviour: str, **settings: object) -> tuple[str, object]:
        ctx = thread_server(settings_for(empty_registry, **settings))
        url, app = ctx.__enter__()
        servers.append(ctx)
        app.state.svc.models.current = _stub(behaviour)
        return url, app

    yield start
    for ctx in servers:
        ctx.__exit__(None, None, None)


def _scan(url: str, item: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/scans", content=png_bytes(), timeout=30,
                      params={"item_id": item, "scanner_id": "S1"},
                      headers={"Content-Type": "image/png", **SCAN_HEADERS})


def test_slow_model_times_out_to_inspect_stored_once(app_with, empty_registry: Registry) -> None:
    url, _ = app_with("slow", timeout_ms=200)
    r = _scan(url, "slow-1")
    assert r.status_code == 200
    assert_failsafe(r.json(), "timeout")
    assert r.json()["latency_ms"] < 800
    time.sleep(1.2)  # the scoring thread finishes the batch: it must not store a second row
    rows = [x for x in store_rows(empty_registry) if x["item_id"] == "slow-1"]
    assert [(x["request_id"], x["reason"]) for x in rows] == [(r.json()["request_id"], "timeout")]
    # The handler that answered `timeout` stored the image itself (the batch never did).
    from atr.store.image_store import ImageStore

    assert ImageStore(empty_registry.root / "images").get(rows[0]["image_ref"]) == png_bytes()


@pytest.mark.parametrize(("behaviour", "reason"), [("crash", "model_error"),
                                                   ("nan", "invalid_scores")])
def test_model_failure_is_inspected(app_with, empty_registry: Registry, behaviour: str,
                                    reason: str) -> None:
    url, _ = app_with(behaviour)
    r = _scan(url, f"{behaviour}-1")
    assert r.status_code == 200
    if behaviour == "crash":  # no scores: the service's own fail-safe
        assert_failsafe(r.json(), reason)
    else:  # NaN scores (sent as null): the policy itself refuses them
        assert (r.json()["decision"], r.json()["reason"]) == ("INSPECT", reason)
        assert set(r.json()["scores"]) == set(OUTPUTS)
        assert_policy_decision(r.json(), STUB_POLICY)
    assert [x["reason"] for x in store_rows(empty_registry)] == [reason]
    metrics = httpx.get(f"{url}/metrics").text
    assert f'atr_failsafe_total{{reason="{reason}"}} 1.0' in metrics


def test_store_down_answers_inspect_with_503_not_a_bare_error(app_with) -> None:
    url, app = app_with("fast")

    def refuse(rows: list) -> None:
        raise OSError("disk full")

    app.state.svc.recorder.write = refuse
    r = _scan(url, "nostore-1")
    assert r.status_code == 503
    body = r.json()
    assert_failsafe(body, "store_error")
    assert body["stored"] is False
