"""A resent item_id (same scanner) gets the stored decision, marked `replay`, never a
second row nor a second decision: sequential resends, duplicates inside one batch,
concurrent posts to two replicas sharing the store, and a resend after a timeout. On the
embedded SQLite store and on a real PostgreSQL (the replicas' shared store)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.images import png_bytes
from helpers.registry import Registry
from helpers.service import SCAN_HEADERS, settings_for, thread_server
from helpers.stores import fresh_database, running_postgres
from sqlalchemy import create_engine, text

from atr.package.onnx_scorer import OnnxScorer
from serving.model_source import LoadedModel


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_postgres(tmp_path_factory.mktemp("pg") / "data") as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'predictions.db'}"
    return fresh_database(request.getfixturevalue("postgres"))


@pytest.fixture(scope="module")
def model(package_template: Path) -> LoadedModel:
    """The tiny real ONNX package, loaded once: every replica serves the same version."""
    scorer = OnnxScorer(package_template)
    return LoadedModel(name="atr-screening", version="1", alias="champion", scorer=scorer,
                       policy=scorer.policy, sha256={}, max_pixels=10_000_000)


@pytest.fixture
def replicas(empty_registry: Registry, model: LoadedModel, store_url: str,
             tmp_path: Path) -> Iterator[Any]:
    """start(**settings) -> url of an app on the shared store and image folder, serving
    `model` (the registry is empty: the poller keeps it)."""
    with ExitStack() as stack:
        def start(**overrides: object) -> str:
            settings = settings_for(empty_registry, prediction_db=store_url,
                                    image_store=str(tmp_path / "images"), **overrides)
            url, app = stack.enter_context(thread_server(settings))
            app.state.svc.models.current = model
            return url
        yield start


def _scan(url: str, item: str, colour: tuple[int, int, int] = (255, 140, 0)) -> dict:
    r = httpx.post(f"{url}/v1/scans", content=png_bytes(colour), timeout=30,
                   params={"item_id": item, "scanner_id": "S1"},
                   headers={"Content-Type": "image/png", **SCAN_HEADERS})
    assert r.status_code == 200, r.text
    return r.json()


def _rows(url: str, item: str) -> list[tuple]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT request_id, decision, reason FROM predictions "
                                 "WHERE item_id = :i ORDER BY id"), {"i": item}).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def _decision(body: dict) -> tuple:
    return (body["request_id"], body["decision"], body["reason"],
            tuple(sorted(body["scores"].items())))


def test_a_resend_replays_the_stored_decision(replicas, store_url: str) -> None:
    url = replicas()
    first = _scan(url, "item-1")
    again = _scan(url, "item-1", colour=(10, 10, 10))  # other bytes: still the same item
    assert first["replay"] is False and again["replay"] is True
    assert _decision(again) == _decision(first)
    assert _rows(store_url, "item-1") == [(first["request_id"], first["decision"],
                                           first["reason"])]
    # the same item twice in one batch, and one already decided: one row each
    items = [{"item_id": i, "image_b64": base64.b64encode(png_bytes()).decode()}
             for i in ("item-1", "item-2", "item-2")]
    r = httpx.post(f"{url}/v1/scans/batch", json={"scanner_id": "S1", "items": items},
                   headers=SCAN_HEADERS, timeout=30)
    assert r.status_code == 200, r.text
    one, two_a, two_b = r.json()
    assert one["replay"] is True and _decision(one) == _decision(first)
    assert sorted([two_a["replay"], two_b["replay"]]) == [False, True]
    assert _decision(two_a) == _decision(two_b)
    assert len(_rows(store_url, "item-2")) == 1
    # another scanner's item of the same id is another decision
    other = httpx.post(f"{url}/v1/scans", content=png_bytes(), timeout=30,
                       params={"item_id": "item-1", "scanner_id": "S2"},
                       headers={"Content-Type": "image/png", **SCAN_HEADERS}).json()
    assert other["replay"] is False and len(_rows(store_url, "item-1")) == 2


def test_concurrent_posts_to_two_replicas_get_one_decision(replicas, store_url: str) -> None:
    urls = [replicas(), replicas()]
    with ThreadPoolExecutor(12) as pool:
        bodies = list(pool.map(lambda i: _scan(urls[i % 2], "item-c"), range(12)))
    assert len({_decision(b) for b in bodies}) == 1  # every post: the one stored decision
    assert sum(not b["replay"] for b in bodies) == 1
    assert len(_rows(store_url, "item-c")) == 1


def test_a_resend_after_a_timeout_gets_the_timeout_decision(replicas, store_url: str) -> None:
    """The line gave up on the first answer's time budget: that item was sent to INSPECT
    (stored). Its resend, even to a replica that would answer in time, is that decision:
    an item has one decision, and the fail-safe one stands."""
    slow = replicas(timeout_ms=1)
    first = _scan(slow, "item-t")
    assert (first["decision"], first["reason"], first["replay"]) == ("INSPECT", "timeout", False)
    again = _scan(replicas(), "item-t")
    assert again["replay"] is True and _decision(again) == _decision(first)
    assert _rows(store_url, "item-t") == [(first["request_id"], "INSPECT", "timeout")]
