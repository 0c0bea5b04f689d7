"""`atr serve serve.workers=2`, for real on loopback: two worker processes on one port
(serving/workers.py). Both answer; every acknowledged decision is stored once; /metrics
counts the requests of both, whichever answers; a resend through the other worker is a
replay of the stored decision; audit draws are the keyed ones; SIGTERM to the supervisor
stops both workers and leaves no process behind."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from helpers.images import png_bytes
from helpers.registry import Registry
from helpers.service import SCAN_HEADERS, Server
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from atr.policy.audit import audit_draw
from atr.processes import group_alive

WORKERS = 2
SEED, SHARE = 7, 0.5


def _get(url: str, path: str) -> httpx.Response:
    """On a fresh connection: the kernel hands each connection to one of the workers."""
    return httpx.get(url + path, timeout=10, trust_env=False)


def _scan(url: str, item: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/scans", content=png_bytes(), timeout=30, trust_env=False,
                      params={"item_id": item, "scanner_id": "S1"},
                      headers={"Content-Type": "image/png", **SCAN_HEADERS})


def _until_both(call, seen: dict[str, list[httpx.Response]], tries: int = 400) -> None:
    """Call on fresh connections (8 at a time) until both workers have answered."""
    with ThreadPoolExecutor(8) as pool:
        for _ in range(tries // 8):
            for r in pool.map(lambda _: call(), range(8)):
                seen.setdefault(r.headers["x-atr-worker"], []).append(r)
            if len(seen) >= WORKERS:
                return
    raise AssertionError(f"only workers {sorted(seen)} answered")


@pytest.fixture(scope="module")
def served(registry: Registry) -> Iterator[Server]:
    extra = [f"serve.workers={WORKERS}", f"serve.audit_share={SHARE}",
             f"serve.audit_seed={SEED}", "serve.intra_op_threads=1", "serve.poll_seconds=0.2"]
    with Server(registry, extra) as server:
        ready: dict[str, list[httpx.Response]] = {}
        # each worker loads the model on its own: wait until both are ready
        deadline = time.monotonic() + 60
        while sum(r.status_code == 200 for rs in ready.values() for r in rs[-1:]) < WORKERS:
            assert time.monotonic() < deadline, {k: v[-1].text for k, v in ready.items()}
            r = _get(server.url, "/ready")
            ready.setdefault(r.headers["x-atr-worker"], []).append(r)
        yield server


def _children(pid: int) -> set[int]:
    return {int(c) for task in Path(f"/proc/{pid}/task").iterdir()
            for c in (task / "children").read_text().split()}


def _workers(pid: int) -> set[int]:
    """The supervisor's worker processes (multiprocessing's resource tracker is a child too)."""
    return {c for c in _children(pid)
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()}


def _metric(url: str, name: str, **labels: str) -> float:
    body = _get(url, "/metrics").text
    return sum(s.value for fam in text_string_to_metric_families(body) for s in fam.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _rows(registry: Registry, prefix: str) -> list[tuple]:
    engine = create_engine(f"sqlite:///{registry.root / 'predictions' / 'predictions.db'}")
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT item_id, request_id, decision, audit, would_be FROM predictions "
            "WHERE item_id LIKE :p ORDER BY id"), {"p": f"{prefix}%"}).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_two_workers_answer_and_store_every_decision_once(served: Server,
                                                          registry: Registry) -> None:
    workers = _workers(served.proc.pid)
    assert len(workers) == WORKERS, workers
    before = _metric(served.url, "atr_requests_total", endpoint="/v1/scans", status="200")
    seen: dict[str, list[httpx.Response]] = {}
    sent = iter(range(10_000))
    _until_both(lambda: _scan(served.url, f"w-{next(sent)}"), seen)
    replies = [r for rs in seen.values() for r in rs]
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies][:3]
    assert {int(pid) for pid in seen} == workers

    rows = _rows(registry, "w-")
    bodies = {r.json()["item_id"]: r.json() for r in replies}
    assert sorted(row[0] for row in rows) == sorted(bodies)  # each acknowledged item, once
    for item, request_id, decision, audit, stored in rows:
        would_be = json.loads(stored)
        assert (request_id, decision) == (bodies[item]["request_id"], bodies[item]["decision"])
        # the audit draw is the keyed hash, whichever worker drew it
        draw = audit_draw(SEED, "S1", item)
        assert would_be["audit_draw"] == pytest.approx(draw, abs=0)
        assert bool(audit) == (would_be["decision"] == "CLEAR" and draw < SHARE)

    # the counters of both workers, whichever worker answers the scrape
    scrapes: dict[str, list[httpx.Response]] = {}
    _until_both(lambda: _get(served.url, "/metrics"), scrapes)
    for pid, rs in scrapes.items():
        fams = {s.name: s for fam in text_string_to_metric_families(rs[-1].text)
                for s in fam.samples if s.labels.get("endpoint") == "/v1/scans"
                and s.labels.get("status") == "200"}
        assert fams["atr_requests_total"].value - before == len(replies), pid
    assert _metric(served.url, "atr_decisions_total") >= len(replies)


def test_a_resend_through_the_other_worker_replays_the_stored_decision(
        served: Server, registry: Registry) -> None:
    first = _scan(served.url, "replay-1")
    assert first.status_code == 200 and first.json()["replay"] is False
    other: dict[str, list[httpx.Response]] = {first.headers["x-atr-worker"]: [first]}
    _until_both(lambda: _scan(served.url, "replay-1"), other)
    again = next(rs[-1] for pid, rs in other.items() if pid != first.headers["x-atr-worker"])
    assert again.json()["replay"] is True
    for key in ("request_id", "decision", "reason", "scores"):
        assert again.json()[key] == first.json()[key]
    assert [row[1] for row in _rows(registry, "replay-1")] == [first.json()["request_id"]]


def test_every_worker_follows_an_approval_and_its_rollback(served: Server,
                                                          registry: Registry) -> None:
    """Each worker polls the alias on its own: both serve v2 after the approval (each from
    a download folder of its own), both v1 again after the rollback."""
    def versions() -> dict[str, str]:
        seen: dict[str, list[httpx.Response]] = {}
        _until_both(lambda: _get(served.url, "/v1/model"), seen)
        return {pid: rs[-1].json()["version"] for pid, rs in seen.items()}

    try:
        for version in ("2", "1"):
            registry.set_alias("champion", version)
            deadline = time.monotonic() + 30
            while set((now := versions()).values()) != {version}:
                assert time.monotonic() < deadline, now
                time.sleep(0.2)
    finally:
        registry.set_alias("champion", "1")


def test_keep_alive_connections_opened_at_once_are_spread_over_the_workers(
        served: Server) -> None:
    """4 keep-alive connections opened together: the kernel alone often leaves them all on
    one worker (the first awake accepts every waiting one); serving/balance.py sheds the
    excess, so both workers answer a fair share of one client's requests."""
    with httpx.Client(base_url=served.url, trust_env=False, timeout=30,
                      limits=httpx.Limits(max_connections=4)) as client:
        def post(i: int) -> str:
            r = client.post("/v1/scans", content=png_bytes(), params={
                "item_id": f"ka-{i}", "scanner_id": "S1"},
                headers={"Content-Type": "image/png", **SCAN_HEADERS})
            assert r.status_code == 200, r.text
            return r.headers["x-atr-worker"]

        with ThreadPoolExecutor(4) as pool:
            answered = list(pool.map(post, range(80)))
    counts = sorted(answered.count(pid) for pid in set(answered))
    assert len(counts) == WORKERS and counts[0] >= 16, counts


def test_the_connection_table_says_which_worker_is_over_its_share(tmp_path: Path) -> None:
    from serving.balance import ConnectionTable

    first, second = (ConnectionTable(tmp_path / "t", 2, k) for k in (0, 1))
    assert first.add(1) == 1 and not first.over_share()  # 1 vs 0: within one
    assert first.add(1) == 2 and first.over_share()  # 2 > 0 + 1
    second.add(1)
    assert not first.over_share() and not second.over_share()
    first.add(-2)
    assert second.add(1) == 2 and second.over_share()  # 2 > 0 + 1
    assert ConnectionTable(tmp_path / "t", 2, 1).add(0) == 0  # a replaced worker starts at 0


def test_sigterm_to_the_supervisor_stops_every_worker(registry: Registry) -> None:
    with Server(registry, [f"serve.workers={WORKERS}"]) as server:
        server.wait("/health", 60)
        deadline = time.monotonic() + 60
        while len(workers := _workers(server.proc.pid)) < WORKERS:
            assert time.monotonic() < deadline, workers
            time.sleep(0.1)
        children = _children(server.proc.pid)  # the workers and the resource tracker
        os.kill(server.proc.pid, signal.SIGTERM)  # the supervisor alone, not its group
        assert server.proc.wait(30) == 0
        deadline = time.monotonic() + 20
        while group_alive(server.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(server.proc.pid)  # no worker left in the group
        assert not any(Path(f"/proc/{pid}").exists() for pid in children)


def test_the_workers_get_the_settings_exactly_and_a_share_of_each_rate(tmp_path: Path) -> None:
    """What the parent hands over (JSON in the environment) is the same Settings, each
    field typed; a worker's buckets refill at rate / N, burst unchanged; each worker has a
    download folder of its own."""
    from serving.rate_limit import RateLimit
    from serving.settings import Settings
    from serving.workers import _typed, worker_settings

    given = Settings(prediction_db="sqlite:///p.db", image_store="img", tracking_uri="t",
                     model_name="m", download_dir=str(tmp_path / "models"), workers=2,
                     audit_shares={"S1": 0.1}, rate_limits={"scanner": RateLimit(90.0, 30)},
                     max_pixels=1000, intra_op_threads=None)
    handed = _typed(json.loads(json.dumps(dataclasses.asdict(given))))
    assert handed == given
    import serving.workers as workers_module

    mine = worker_settings(handed, 3)
    assert mine.rate_limits["scanner"] == RateLimit(30.0, 30)
    assert mine.download_dir == str(tmp_path / "models" / "worker-0")
    first = workers_module._slot  # what a first worker holds for its life
    # a second worker on the same folder: the next free slot
    assert worker_settings(handed, 3).download_dir == str(tmp_path / "models" / "worker-1")
    assert first is not None and first[0] == 0 and not first[1].closed
