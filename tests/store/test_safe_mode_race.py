"""Two replicas lifting (or entering) one scanner's safe mode at the same moment change the
flag once and log one event, on both engines: the flag flips by a conditional UPDATE."""

from __future__ import annotations

import threading

from atr.store.prediction_store import ensure_store
from atr.store.safe_mode import enter_safe_mode, lift_safe_mode, scanner_events

REPLICAS = 6


def _at_once(factory, action) -> list[bool]:
    barrier = threading.Barrier(REPLICAS)
    results: list[bool] = []

    def replica(k: int) -> None:
        with factory() as session:
            barrier.wait()
            results.append(action(session, k))

    threads = [threading.Thread(target=replica, args=(k,)) for k in range(REPLICAS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_concurrent_enter_and_lift_log_once(empty_url: str) -> None:
    factory = ensure_store(empty_url)
    entered = _at_once(factory, lambda s, k: enter_safe_mode(s, "B", "drift", f"monitor-{k}"))
    lifted = _at_once(factory, lambda s, k: lift_safe_mode(s, "B", f"replica-{k}", "covered"))
    assert sorted(entered) == [False] * (REPLICAS - 1) + [True]
    assert sorted(lifted) == [False] * (REPLICAS - 1) + [True]
    with factory() as session:
        events = scanner_events(session, "B")
    assert [e["action"] for e in events] == ["enter", "lift"]
