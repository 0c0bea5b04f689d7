"""From a scan request to a stored decision: store the image, decode it, batch-score it,
and answer within the request's time budget.

Decode, image store and image statistics run in the thread pool (parallel across
requests); scoring and the store's commit run in the micro-batcher's scoring thread.
Whatever fails, the item gets a row in the store and a decision (INSPECT for failures).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from atr.inference.image_stats import image_stats
from atr.inference.preprocess import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image
from atr.monitor.image_store import ImageStore
from serving.batcher import MicroBatcher
from serving.decisions import (
    IMAGE_TOO_LARGE,
    IMAGE_UNREADABLE,
    TIMEOUT,
    PendingScan,
    decide_batch,
    failsafe_row,
)
from serving.model_manager import ModelManager
from serving.recorder import PredictionRecorder
from serving.settings import Settings
from serving.uploads import ScanInput

log = logging.getLogger("serving.scans")

# Not a decision the store holds: the reply says INSPECT, with HTTP 503 (not acknowledged).
STORE_ERROR = "store_error"


class StoreUnavailable(RuntimeError):
    """The decision could not be stored: it must not be acknowledged as stored."""

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__(f"prediction {row['request_id']} not stored")
        self.row = row


class ScanService:
    def __init__(self, settings: Settings, models: ModelManager, recorder: PredictionRecorder,
                 images: ImageStore) -> None:
        self.settings = settings
        self.models = models
        self.recorder = recorder
        self.images = images
        self.batcher = MicroBatcher(self._process_batch, settings.max_batch,
                                    settings.max_wait_ms)

    # --- scoring thread -----------------------------------------------------------------
    def _process_batch(self, batch: list[PendingScan]) -> dict[str, dict[str, Any]]:
        model, shadow = self.models.current, self.models.shadow  # read once per batch
        self.models.metrics.batch_size.observe(len(batch))
        rows = decide_batch(batch, model, shadow, self.settings.embedding_dims)
        # Items whose handler already answered `timeout` keep that row, not this one.
        mine = [row for scan, row in zip(batch, rows, strict=True) if scan.claim()]
        self.recorder.write(mine)  # group commit; raises -> every handler answers 503
        return {row["request_id"]: row for row in mine}

    # --- thread pool --------------------------------------------------------------------
    def _prepare(self, scan: PendingScan, item: ScanInput) -> None:
        if item.too_large or item.data is None:
            scan.failure = IMAGE_TOO_LARGE  # never stored nor decoded: that is the point
            return
        try:
            # Kept even when it does not decode: an analyst may want to see what came in.
            scan.image_ref = self.images.put(item.data, item.filename)
        except OSError:
            log.exception("image store write failed for item %s", scan.item_id)
        model = self.models.current
        max_pixels = self.settings.max_pixels or (model.max_pixels if model
                                                  else DEFAULT_MAX_PIXELS)
        try:
            scan.image = decode_image(item.data, max_pixels=max_pixels)
        except ImageDecodeError as exc:
            # decode_image refuses pixel bombs with this message before allocating them.
            too_large = str(exc).startswith("image too large")
            scan.failure = IMAGE_TOO_LARGE if too_large else IMAGE_UNREADABLE
            return
        except Exception:  # a decoder crash on hostile bytes is still an unreadable image
            log.exception("decoder failed on item %s", scan.item_id)
            scan.failure = IMAGE_UNREADABLE
            return
        scan.image_stats = image_stats(scan.image)

    # --- event loop ---------------------------------------------------------------------
    async def decide(self, item: ScanInput, started: float) -> dict[str, Any]:
        """The stored row for one item; raises StoreUnavailable if it could not be stored."""
        scan = PendingScan(item_id=item.item_id, scanner_id=item.scanner_id, started=started)
        work = asyncio.ensure_future(self._prepare_and_queue(scan, item))
        budget = self.settings.timeout_ms / 1000.0 - (time.monotonic() - started)
        try:
            row = await asyncio.wait_for(asyncio.shield(work), max(budget, 0.0))
        except TimeoutError:
            row = await self._on_timeout(scan, work)
        except Exception as exc:  # the batch's commit failed
            raise self._unstored(scan) from exc
        if row is None:  # nobody stored it: never acknowledge an unstored decision
            raise self._unstored(scan)
        return row

    async def _on_timeout(self, scan: PendingScan, work: asyncio.Future[Any]) -> Any:
        if not scan.claim():
            try:
                return await work  # the worker owns it and is committing it right now
            except Exception as exc:
                raise self._unstored(scan) from exc
        work.add_done_callback(_swallow)  # its late result is dropped
        row = failsafe_row(scan, TIMEOUT, self.models.current)
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.recorder.write, [row])
        except Exception as exc:
            log.exception("timeout row %s not stored", row["request_id"])
            raise self._unstored(scan) from exc
        return row

    def _unstored(self, scan: PendingScan) -> StoreUnavailable:
        return StoreUnavailable(failsafe_row(scan, STORE_ERROR, self.models.current))

    async def _prepare_and_queue(self, scan: PendingScan, item: ScanInput) -> Any:
        await asyncio.get_running_loop().run_in_executor(None, self._prepare, scan, item)
        return await self.batcher.submit(scan)


def _swallow(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log it as never retrieved
