"""Micro-batching: items that arrive together share one run; max_batch caps a run."""

from __future__ import annotations

import asyncio
import time

from serving.batcher import MicroBatcher
from serving.decisions import PendingScan


def _run(max_batch: int, max_wait_ms: float, n: int) -> tuple[list[int], list[object]]:
    sizes: list[int] = []

    def process(batch: list[PendingScan]) -> dict:
        sizes.append(len(batch))
        return {s.request_id: {"item": s.item_id} for s in batch}

    async def main() -> list[object]:
        batcher = MicroBatcher(process, max_batch=max_batch, max_wait_ms=max_wait_ms)
        batcher.start()
        futures = [batcher.submit(PendingScan(f"i{k}", "S", time.monotonic())) for k in range(n)]
        results = await asyncio.gather(*futures)
        await batcher.stop()
        return results

    return sizes, asyncio.run(main())


def test_concurrent_items_share_one_batch_in_order() -> None:
    sizes, results = _run(max_batch=16, max_wait_ms=50, n=5)
    assert sizes == [5]
    assert results == [{"item": f"i{k}"} for k in range(5)]


def test_max_batch_caps_each_run() -> None:
    sizes, results = _run(max_batch=2, max_wait_ms=50, n=5)
    assert sizes == [2, 2, 1] and len(results) == 5


def test_a_failed_batch_fails_each_waiting_request() -> None:
    def process(batch: list[PendingScan]) -> dict:
        raise OSError("store down")

    async def main() -> list[object]:
        batcher = MicroBatcher(process, max_batch=4, max_wait_ms=10)
        batcher.start()
        futures = [batcher.submit(PendingScan(f"i{k}", "S", time.monotonic())) for k in range(3)]
        out = await asyncio.gather(*futures, return_exceptions=True)
        await batcher.stop()
        return out

    assert all(isinstance(r, OSError) for r in asyncio.run(main()))


def test_a_lone_item_does_not_wait_out_max_wait() -> None:
    """Idle queue: the batch leaves at once (max_wait_ms caps growth, it is not a delay)."""

    async def main() -> float:
        batcher = MicroBatcher(lambda b: {s.request_id: {} for s in b}, max_batch=16,
                               max_wait_ms=2000)
        batcher.start()
        t0 = time.monotonic()
        await batcher.submit(PendingScan("i", "S", t0))
        elapsed = time.monotonic() - t0
        await batcher.stop()
        return elapsed

    assert asyncio.run(main()) < 0.5


def test_two_stages_reply_after_commit_in_order_and_fail_per_batch() -> None:
    """process (CPU) then commit (durable writes): replies only after their commit; commits
    run in batch order; a failed commit fails only its own batch's requests."""
    committed: list[list[str]] = []

    def process(batch: list[PendingScan]) -> list[str]:
        time.sleep(0.01)
        return [s.item_id for s in batch]

    def commit(batch: list[PendingScan], items: list[str]) -> dict:
        time.sleep(0.03)
        if "bad" in items:
            raise OSError("disk full")
        committed.append(items)
        return {s.request_id: {"item": s.item_id, "after": len(committed)} for s in batch}

    async def main() -> list[object]:
        batcher = MicroBatcher(process, max_batch=2, max_wait_ms=0, commit=commit)
        batcher.start()
        ids = ["a", "b", "bad", "c", "d", "e"]
        futures = [batcher.submit(PendingScan(i, "S", time.monotonic())) for i in ids]
        out = await asyncio.gather(*futures, return_exceptions=True)
        await batcher.stop()
        return out

    out = asyncio.run(main())
    assert committed == [["a", "b"], ["d", "e"]]
    assert out[0] == {"item": "a", "after": 1} and out[4] == {"item": "d", "after": 2}
    assert isinstance(out[2], OSError) and isinstance(out[3], OSError)
