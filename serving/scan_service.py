"""From a scan request to a stored decision: batch-score it, store its image and row,
and answer within the request's time budget.

The event loop only reads requests and writes replies. Each upload is decoded (image
statistics included) in the decode thread as it arrives (`serve.decode_ahead`, on by
default: decoding then overlaps the previous batch's ONNX run); per micro-batch, the scoring
thread does the rest of the CPU work (any decode still due, preprocessing, ONNX, policy,
rows), then the commit thread makes the batch durable: the images (their syncs overlapped
in a small I/O pool), then the rows in one transaction; only then are the replies released. The
commit of one batch overlaps the scoring of the next. An upload whose header announces a
very large image is decoded in the default thread pool before it is queued, so a hostile
pixel count cannot stall a whole batch.
Whatever fails, the item gets a row in the store and a decision (INSPECT for failures).
A resent item_id (same scanner) gets the decision stored the first time, `replay` marked,
whatever that was (an INSPECT/timeout included): one item, one decision (serving/recorder.py).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image

from atr.package.image_stats import image_stats
from atr.package.plausibility import image_figures
from atr.package.preprocess import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image
from atr.package.reasons import STORE_ERROR
from atr.store.image_store import ImageStore
from serving.batcher import MicroBatcher
from serving.decisions import (
    IMAGE_TOO_LARGE,
    IMAGE_UNREADABLE,
    TIMEOUT,
    PendingScan,
    decide_batch,
    failsafe_row,
)
from serving.line_state import LineState
from serving.model_manager import ModelManager
from serving.recorder import PredictionRecorder
from serving.settings import Settings
from serving.uploads import ScanInput

log = logging.getLogger("serving.scans")

# Uploads announcing more pixels than this are decoded off the scoring thread.
BIG_IMAGE_PIXELS = 4_000_000
# A PNG's signature, then its first chunk (IHDR, 13 bytes long): width, height follow.
_PNG_IHDR = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
# Concurrent image syncs per batch (I/O waits: they do not compete for the cores).
IO_THREADS = 8


class StoreUnavailable(RuntimeError):
    """The decision could not be stored: it must not be acknowledged as stored."""

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__(f"prediction {row['request_id']} not stored")
        self.row = row


class ScanService:
    def __init__(self, settings: Settings, models: ModelManager, recorder: PredictionRecorder,
                 images: ImageStore, line: LineState) -> None:
        self.settings = settings
        self.line = line
        self.models = models
        self.recorder = recorder
        self.images = images
        self.batcher = MicroBatcher(self._process_batch, settings.max_batch,
                                    settings.max_wait_ms, commit=self._commit_batch)
        self._io = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="image-sync")
        self._decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")

    async def stop(self) -> None:
        await self.batcher.stop()
        self._io.shutdown(wait=True)
        self._decoder.shutdown(wait=True)

    # --- scoring thread: the batch's CPU work ---------------------------------------------
    def _process_batch(self, batch: list[PendingScan]) -> list[dict[str, Any]]:
        model, shadow = self.models.current, self.models.shadow  # read once per batch
        self.models.metrics.batch_size.observe(len(batch))
        todo = [scan for scan in batch if scan.failure is None and scan.image is None]
        for scan in todo:
            self._decode(scan, model)
        return decide_batch(batch, model, shadow, self.settings.embedding_dims, self.line,
                            self.settings.plausibility, self.settings.localisation)

    # --- commit thread: images, then rows, durably ---------------------------------------
    def _commit_batch(self, batch: list[PendingScan], rows: list[dict[str, Any]]
                      ) -> dict[str, dict[str, Any]]:
        # Items whose handler already answered `timeout` keep that row, not this one.
        mine = [(scan, row) for scan, row in zip(batch, rows, strict=True) if scan.claim()]
        self._store_images([scan for scan, _ in mine])
        # An upload whose image could not be stored gets no row and no acknowledgement: its
        # handler answers 503 store_error (INSPECT), as when the row cannot be written.
        mine = [(scan, row) for scan, row in mine if scan.data is None or scan.image_ref]
        for scan, row in mine:
            row["image_ref"] = scan.image_ref
        # raises -> every handler answers 503; a resent item gets its stored decision
        replays = self.recorder.write([row for _, row in mine])
        for scan, _ in mine:
            scan.data = scan.image = None  # replies need neither
        return {row["request_id"]: replays.get(row["request_id"], row) for _, row in mine}

    def _store_images(self, scans: list[PendingScan]) -> None:
        """Each upload durably in the image store (kept even when it does not decode: an
        analyst may want to see what came in); a failed write leaves the scan without a
        reference (the reference must never name a file that is not there), and
        `_commit_batch` then refuses the item."""
        todo = [s for s in scans if s.data is not None and s.image_ref is None]
        if not todo:
            return
        refs = self.images.put_many([(s.data, s.filename) for s in todo],  # type: ignore[misc]
                                    self._io)
        for scan, ref in zip(todo, refs, strict=True):
            if isinstance(ref, str):
                scan.image_ref = ref
            else:
                log.error("image store write failed for item %s: %s", scan.item_id, ref)

    def _decode(self, scan: PendingScan, model: Any) -> None:
        max_pixels = self.settings.max_pixels or (model.max_pixels if model
                                                  else DEFAULT_MAX_PIXELS)
        try:
            # The model's own representation decodes (pseudo-colour or dual-energy raw).
            decode = model.scorer.preprocess.decode if model else decode_image
            scan.image = decode(scan.data, max_pixels=max_pixels)  # type: ignore[arg-type]
        except ImageDecodeError as exc:
            # decode_image refuses pixel bombs with this message before allocating them.
            too_large = str(exc).startswith("image too large")
            scan.failure = IMAGE_TOO_LARGE if too_large else IMAGE_UNREADABLE
            return
        except Exception:  # a decoder crash on hostile bytes is still an unreadable image
            log.exception("decoder failed on item %s", scan.item_id)
            scan.failure = IMAGE_UNREADABLE
            return
        display = model.scorer.preprocess.display(scan.image) if model else scan.image
        scan.image_stats = image_stats(display)
        if self.settings.plausibility:
            try:  # here, not in the scoring thread: it overlaps the previous batch's ONNX run
                scan.figures = image_figures(display, scan.image.shape[:2])
            except Exception:  # left unmeasured: the line's rules then INSPECT the item
                log.exception("plausibility figures failed on item %s", scan.item_id)

    # --- event loop ---------------------------------------------------------------------
    async def decide(self, item: ScanInput, started: float) -> dict[str, Any]:
        """The stored row for one item; raises StoreUnavailable if it could not be stored."""
        scan = PendingScan(item_id=item.item_id, scanner_id=item.scanner_id, started=started,
                           data=None if item.too_large else item.data, filename=item.filename)
        if item.too_large or item.data is None:
            scan.failure = IMAGE_TOO_LARGE  # never stored nor decoded: that is the point
        work = asyncio.ensure_future(self._queue(scan))
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
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, self._store_timeout, scan)
        except Exception as exc:
            log.exception("timeout row %s not stored", scan.request_id)
            raise self._unstored(scan) from exc

    def _store_timeout(self, scan: PendingScan) -> dict[str, Any]:
        """The handler owns the item (claimed): its image, then its INSPECT/timeout row."""
        self._store_images([scan])
        row = failsafe_row(scan, TIMEOUT, self.models.current)
        # An item decided before (a resend) keeps that decision, not this timeout.
        return self.recorder.write([row]).get(row["request_id"], row)

    def _unstored(self, scan: PendingScan) -> StoreUnavailable:
        return StoreUnavailable(failsafe_row(scan, STORE_ERROR, self.models.current))

    async def _queue(self, scan: PendingScan) -> Any:
        if scan.failure is None and _announced_pixels(scan.data) > BIG_IMAGE_PIXELS:
            await asyncio.get_running_loop().run_in_executor(
                None, self._decode, scan, self.models.current)
        elif scan.failure is None and self.settings.decode_ahead:
            await asyncio.get_running_loop().run_in_executor(
                self._decoder, self._decode, scan, self.models.current)
        return await self.batcher.submit(scan)


def _announced_pixels(data: bytes | None) -> int:
    """Width x height from the image header (Pillow reads no pixel data); 0 if unreadable
    (the scoring thread's decode then reports why). A PNG's come straight from its IHDR
    chunk (0.2 us instead of Pillow's 8 us, on the event loop for every scan)."""
    if data is not None and data[:16] == _PNG_IHDR and len(data) >= 24:
        return int.from_bytes(data[16:20], "big") * int.from_bytes(data[20:24], "big")
    try:
        with Image.open(io.BytesIO(data)) as img:  # type: ignore[arg-type]
            width, height = img.size
    except Exception:
        return 0
    return int(width) * int(height)


def _swallow(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log it as never retrieved
