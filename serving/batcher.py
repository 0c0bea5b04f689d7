"""Micro-batching: concurrent requests share one scoring run and one commit.

Handlers put PendingScans on an asyncio queue. One worker takes the first item plus
whatever else is queued (up to `max_batch`) and hands the batch to the scoring thread.
It does not sit out a fixed window: as soon as the queue is idle the batch leaves, so a
lone item is scored at once, and under load the items that queued while the previous
batch was being scored form the next one (`max_wait_ms` only caps how long a batch keeps
growing while items are still arriving).

Two stages, each on a thread of its own, so the CPU work of one batch overlaps the disk
syncs of the previous one:
1. `process(batch)` (scoring thread): decode, statistics, model, rows: all CPU work;
2. `commit(batch, result)` (commit thread): durable writes; returns {request_id: row}.
Commits run one at a time, in batch order. Each request's future is resolved only after
its batch is committed, so a reply always follows its stored row. Without `commit`,
`process` returns the {request_id: row} map itself (one stage).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from serving.decisions import PendingScan

log = logging.getLogger("serving.batcher")

# process(batch) -> {request_id: row} of the items it decided and stored (one stage), or
# anything `commit(batch, that)` turns into that map (two stages).
BatchProcessor = Callable[[list[PendingScan]], Any]
BatchCommitter = Callable[[list[PendingScan], Any], dict[str, dict[str, Any]]]
_Entry = tuple[PendingScan, asyncio.Future[Any]]


class MicroBatcher:
    # Batches scored but not yet committed: bounds memory if the disk stalls.
    MAX_PENDING_COMMITS = 2

    def __init__(self, process: BatchProcessor, max_batch: int, max_wait_ms: float,
                 commit: BatchCommitter | None = None) -> None:
        self.process = process
        self.commit = commit
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._queue: asyncio.Queue[_Entry] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")
        self._commit_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit")
        self._task: asyncio.Task[None] | None = None
        self._commits: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._commits:  # scored batches still get their rows written
            await asyncio.gather(*self._commits, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._commit_executor.shutdown(wait=True)

    def submit(self, scan: PendingScan) -> asyncio.Future[Any]:
        """Queue one item; the future gets its stored row (or the store's exception)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((scan, future))
        return future

    async def _collect(self) -> list[_Entry]:
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0)  # one turn of the loop: requests already read get queued
            if self._queue.empty():
                break  # idle: waiting longer would only add latency
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            scans = [scan for scan, _ in batch]
            try:
                result = await loop.run_in_executor(self._executor, self.process, scans)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _fail(batch, exc)
                continue
            if self.commit is None:
                _resolve(batch, result)
                continue
            while len(self._commits) >= self.MAX_PENDING_COMMITS:
                await asyncio.wait(self._commits, return_when=asyncio.FIRST_COMPLETED)
            task = loop.create_task(self._commit(batch, scans, result))
            self._commits.add(task)
            task.add_done_callback(self._commits.discard)

    async def _commit(self, batch: list[_Entry], scans: list[PendingScan], result: Any) -> None:
        loop = asyncio.get_running_loop()
        try:
            rows = await loop.run_in_executor(self._commit_executor, self.commit, scans, result)
        except Exception as exc:
            _fail(batch, exc)
        else:
            _resolve(batch, rows)


def _fail(batch: list[_Entry], exc: Exception) -> None:
    """Store down (or a bug): each waiting handler answers for itself (503, never a CLEAR)."""
    log.error("batch of %d not stored: %r", len(batch), exc, exc_info=exc)
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


def _resolve(batch: list[_Entry], rows: dict[str, dict[str, Any]]) -> None:
    for scan, future in batch:
        if not future.done():
            future.set_result(rows.get(scan.request_id))
