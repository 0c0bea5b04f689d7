"""Where the evidence is, on the running service (create_app under uvicorn): a REVIEW or
INSPECT reply and its stored row carry the same localisation (boxes in the uploaded
image's pixels), a CLEAR and a fail-safe row carry none, and with serve.localisation=false
no item does."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from helpers.packages import build_package
from helpers.registry import Registry, registry_at
from helpers.service import SCAN_HEADERS, settings_for, thread_server
from helpers.stores import store_rows
from PIL import Image

from atr.package.checksums import package_checksums
from atr.package.onnx_scorer import load_scorer
from atr.policy.decision import Policy

HEIGHT, WIDTH = 40, 56  # not square: the boxes must come back in these pixels


def _images() -> list[np.ndarray]:
    return [np.random.default_rng(i).integers(0, 255, (HEIGHT, WIDTH, 3), np.uint8)
            for i in range(6)]


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The tiny heat-map package with a clear threshold at the median of these images'
    paper_only scores: three CLEAR, three REVIEW (no threat threshold is reached)."""
    package = build_package(tmp_path_factory.mktemp("loc") / "package", seed=3,
                            localisation=True)
    scores, _ = load_scorer(package).score_images(_images())
    paper = np.sort(scores[:, 0])
    policy = Policy.load(package / "policy.json")
    Policy(outputs=policy.outputs, clear_threshold=float(paper[2] + paper[3]) / 2,
           inspect_thresholds=dict.fromkeys(policy.threats, 1.0),
           targets=policy.targets).save(package / "policy.json")
    doc = json.loads((package / "package.json").read_text())
    (package / "package.json").unlink()
    (package / "package.json").write_text(json.dumps({**doc, "sha256": package_checksums(package)}))
    reg = registry_at(tmp_path_factory.mktemp("loc-runtime"))
    reg.register(package)
    reg.set_alias("champion", "1")
    return reg


def _json(value: str | None) -> object:
    """A stored JSON column: SQLAlchemy writes a None as JSON null."""
    return None if value is None else json.loads(value)


def _decide_all(url: str, prefix: str) -> list[dict]:
    bodies = []
    for i, rgb in enumerate([*_images(), None]):
        data = _png(rgb) if rgb is not None else b"not an image"
        r = httpx.post(f"{url}/v1/scans", content=data, timeout=60,
                       params={"item_id": f"{prefix}-{i}", "scanner_id": "S"},
                       headers={"Content-Type": "image/png", **SCAN_HEADERS})
        assert r.status_code == 200, r.text
        bodies.append(r.json())
    return bodies


def test_review_and_inspect_carry_localisation_clear_does_not(registry: Registry) -> None:
    with thread_server(settings_for(registry)) as (url, _app):
        bodies = _decide_all(url, "on")
    decisions = [b["decision"] for b in bodies]
    assert decisions.count("CLEAR") == 3 and decisions.count("REVIEW") == 3, decisions
    assert bodies[-1]["decision"] == "INSPECT" and bodies[-1]["localisation"] is None
    stored = {r["request_id"]: r for r in store_rows(registry)}
    for body in bodies[:-1]:
        row_loc = _json(stored[body["request_id"]]["localisation"])
        if body["decision"] == "CLEAR":
            assert body["localisation"] is None and row_loc is None
            continue
        loc = body["localisation"]
        assert loc is not None and row_loc == loc  # the reply is the stored record
        assert loc["peak"]["label"] in json.loads(stored[body["request_id"]]["scores"])
        x, y = loc["peak"]["xy"]
        assert 0 <= x <= WIDTH and 0 <= y <= HEIGHT
        for box in loc["boxes"]:
            x0, y0, x1, y1 = box["xyxy"]
            assert 0 <= x0 < x1 <= WIDTH and 0 <= y0 < y1 <= HEIGHT
            assert 0 <= box["score"] <= 1


def test_serve_localisation_false_gives_none(registry: Registry) -> None:
    with thread_server(settings_for(registry)) as (url, _app):
        with_it = _decide_all(url, "with")
    with thread_server(settings_for(registry, localisation=False)) as (url, _app):
        bodies = _decide_all(url, "off")
    assert {b["decision"] for b in bodies} == {"CLEAR", "REVIEW", "INSPECT"}
    assert all(b["localisation"] is None for b in bodies)
    stored = {r["request_id"]: r for r in store_rows(registry)}
    assert all(_json(stored[b["request_id"]]["localisation"]) is None for b in bodies)
    # localisation changes nothing else: the same items, the same decisions and scores
    assert [(b["decision"], b["scores"]) for b in bodies] == \
        [(b["decision"], b["scores"]) for b in with_it]

