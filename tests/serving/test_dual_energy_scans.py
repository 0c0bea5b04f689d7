"""A dual-energy model on the line: the service decodes the raw low/high scan with the
model's own preprocessing, decides with its policy, and never clears what it cannot read."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from helpers.decisions import assert_failsafe, assert_served_decision
from helpers.images import png_bytes, stacked_png, two_page_tiff
from helpers.packages import build_package
from helpers.registry import Registry, registry_at
from helpers.service import SCAN_HEADERS, Server
from helpers.stores import store_rows

from atr.package.onnx_scorer import OnnxScorer


@pytest.fixture(scope="module")
def dual_registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, object]:
    package = build_package(tmp_path_factory.mktemp("dual") / "package", seed=3,
                            representation="dual_energy")
    reg = registry_at(tmp_path_factory.mktemp("dual-runtime"))
    reg.register(package)
    reg.set_alias("champion", "1")
    return reg, OnnxScorer(package)


@pytest.fixture(scope="module")
def server(dual_registry) -> Server:
    srv = Server(dual_registry[0], []).start()
    yield srv
    srv.stop()


def _post(server: Server, data: bytes, item: str) -> dict:
    r = httpx.post(f"{server.url}/v1/scans", content=data, timeout=30,
                   params={"item_id": item, "scanner_id": "DE1"},
                   headers={"Content-Type": "application/octet-stream", **SCAN_HEADERS})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("container", [stacked_png, two_page_tiff])
def test_raw_pair_is_decided_by_the_models_policy(server: Server, dual_registry,
                                                  container) -> None:
    _, scorer = dual_registry
    rng = np.random.default_rng(0)
    low = rng.integers(20_000, 60_000, (40, 56))
    high = np.clip(low + 3_000, 0, 65535)
    data = container(low, high)
    body = _post(server, data, f"de-{container.__name__}")
    expected_scores, _ = scorer.score_images([scorer.preprocess.decode(data)])
    got = np.array([body["scores"][o] for o in scorer.outputs])
    np.testing.assert_allclose(got, expected_scores[0], atol=1e-5)
    # the policy that decided is the package's own (policy.json of the registered folder)
    assert scorer.policy.to_dict() == dual_registry[0].policy_json("1")
    assert_served_decision(body, dual_registry[0])


def test_a_colour_picture_sent_to_a_dual_energy_model_is_inspected(server: Server,
                                                                  dual_registry) -> None:
    body = _post(server, png_bytes(), "de-colour")
    assert_failsafe(body, "image_unreadable")
    rows = [r for r in store_rows(dual_registry[0]) if r["item_id"] == "de-colour"]
    assert len(rows) == 1 and rows[0]["decision"] == "INSPECT"
