"""Micro-batching: concurrent requests share one ONNX run and one commit.

Handlers put PendingScans on an asyncio queue; one worker takes the first, then whatever
else arrives within `max_wait_ms` (up to `max_batch`), and hands the batch to a single
scoring thread (ONNX Runtime and the store write release the GIL; the event loop keeps
accepting requests meanwhile). The worker resolves each request's future after the batch
is committed, so a reply always follows its stored row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from serving.decisions import PendingScan

log = logging.getLogger("serving.batcher")

# process(batch) -> {request_id: row} of the items it decided and stored
BatchProcessor = Callable[[list[PendingScan]], dict[str, dict[str, Any]]]


class MicroBatcher:
    def __init__(self, process: BatchProcessor, max_batch: int, max_wait_ms: float) -> None:
        self.process = process
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._queue: asyncio.Queue[tuple[PendingScan, asyncio.Future[Any]]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def submit(self, scan: PendingScan) -> asyncio.Future[Any]:
        """Queue one item; the future gets its stored row (or the store's exception)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((scan, future))
        return future

    async def _collect(self) -> list[tuple[PendingScan, asyncio.Future[Any]]]:
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            scans = [scan for scan, _ in batch]
            try:
                rows = await loop.run_in_executor(self._executor, self.process, scans)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # store down: each waiting handler answers for itself
                log.exception("batch of %d not stored", len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for scan, future in batch:
                if not future.done():
                    future.set_result(rows.get(scan.request_id))
