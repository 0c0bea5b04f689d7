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
