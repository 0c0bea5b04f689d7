"""One micro-batch from images to stored decisions: score on the model read once for the
whole batch, apply its policy, build the prediction rows, group-commit them.

Runs in the scoring thread. Every item leaves with a decision: an item that could not be
scored is INSPECTed with a reason code, never CLEARed (fail-safe).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

# The fail-safe reason codes (each sends the item to INSPECT) are atr.package.reasons',
# shared with the pyfunc; the ones this module does not use itself are re-exported for
# the request side (scan_service, api_scans).
from atr.package.reasons import FAILSAFE_REASONS as FAILSAFE_REASONS
from atr.package.reasons import IMAGE_TOO_LARGE as IMAGE_TOO_LARGE
from atr.package.reasons import IMAGE_UNREADABLE as IMAGE_UNREADABLE
from atr.package.reasons import MODEL_ERROR, NO_MODEL
from atr.package.reasons import TIMEOUT as TIMEOUT
from atr.policy.decision import Decision
from serving.model_source import LoadedModel

log = logging.getLogger("serving.decisions")


@dataclass(eq=False)
class PendingScan:
    """One item between the request handler and the stored decision.

    Exactly one party writes its row: the scoring worker or, past the timeout, the handler.
    `claim()` decides which, so a timed-out item is never stored twice.
    """

    item_id: str
    scanner_id: str
    started: float  # time.monotonic() when the request arrived
    data: bytes | None = None  # the upload (None when too large): decoded and stored later
    filename: str | None = None
    image: np.ndarray | None = None
    failure: str | None = None  # reason code decided before scoring (unreadable, too large)
    image_ref: str | None = None
    image_stats: dict[str, float] | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    _claimed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def claim(self) -> bool:
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True


def prediction_row(scan: PendingScan, decision: str, reason: str,
                   model: LoadedModel | None, scores: dict[str, float] | None = None,
                   embedding: list[float] | None = None,
                   shadow: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `predictions` row (and, less the embedding/stats, the response body)."""
    return {
        "request_id": scan.request_id, "item_id": scan.item_id, "scanner_id": scan.scanner_id,
        "created_at": datetime.now(UTC),
        "model_name": model.name if model else None,
        "model_version": model.version if model else None,
        "decision": decision, "reason": reason, "scores": scores, "embedding": embedding,
        "image_stats": scan.image_stats, "image_ref": scan.image_ref,
        "latency_ms": round((time.monotonic() - scan.started) * 1000.0, 3), "shadow": shadow,
    }


def failsafe_row(scan: PendingScan, reason: str, model: LoadedModel | None) -> dict[str, Any]:
    return prediction_row(scan, Decision.INSPECT.value, reason, model)


def compact_embedding(vector: np.ndarray, dims: int) -> list[float]:
    """The first `dims` values (the full vector when it is no longer), 6 significant digits:
    drift monitoring needs the geometry, not float32's last bits; JSON stays small."""
    return [_finite(v, digits=None) for v in vector[:dims].tolist()]


def _finite(value: float, digits: int | None = 6) -> float | None:
    """JSON has no NaN/inf: a broken score is stored and sent as null (its row is already
    INSPECT / invalid_scores by the policy)."""
    if not math.isfinite(value):
        return None
    return round(value, digits) if digits is not None else float(f"{value:.6g}")


def score_batch(model: LoadedModel, images: list[np.ndarray]
                ) -> tuple[list[dict[str, float]], np.ndarray, list[str], list[str]]:
    """(scores per item, embeddings, decisions, reasons) for images on one model."""
    scores, emb = model.scorer.score_images(images)
    decisions, reasons = model.policy.decide(scores)
    outputs = model.scorer.outputs
    per_item = [{o: _finite(s) for o, s in zip(outputs, row, strict=True)}
                for row in scores.tolist()]
    return per_item, emb, [d.value for d in decisions], list(reasons)


def shadow_results(shadow: LoadedModel | None, images: list[np.ndarray]) -> list[Any]:
    """The challenger's verdict per image, for Prediction.shadow only (never the decision)."""
    if shadow is None or not images:
        return [None] * len(images)
    try:
        scores, _, decisions, reasons = score_batch(shadow, images)
    except Exception as exc:  # a broken challenger must not touch the line
        return [{"version": shadow.version, "error": str(exc)[:200]}] * len(images)
    return [{"name": shadow.name, "version": shadow.version, "scores": s, "decision": d,
             "reason": r} for s, d, r in zip(scores, decisions, reasons, strict=True)]


def decide_batch(batch: list[PendingScan], model: LoadedModel | None,
                 shadow: LoadedModel | None, embedding_dims: int) -> list[dict[str, Any]]:
    """A row per item of the batch (in order), decided on `model`."""
    rows: list[dict[str, Any] | None] = [None] * len(batch)
    todo = [i for i, scan in enumerate(batch) if scan.failure is None]
    for i, scan in enumerate(batch):
        if scan.failure is not None:
            rows[i] = failsafe_row(scan, scan.failure, model)
        elif model is None:
            rows[i] = failsafe_row(scan, NO_MODEL, None)
    if model is not None and todo:
        images = [batch[i].image for i in todo]
        try:
            scores, emb, decisions, reasons = score_batch(model, images)  # type: ignore[arg-type]
        except Exception:
            log.exception("model v%s failed on a batch of %d", model.version, len(todo))
            for i in todo:
                rows[i] = failsafe_row(batch[i], MODEL_ERROR, model)
        else:
            shadows = shadow_results(shadow, images)  # type: ignore[arg-type]
            for k, i in enumerate(todo):
                rows[i] = prediction_row(
                    batch[i], decisions[k], reasons[k], model, scores[k],
                    compact_embedding(emb[k], embedding_dims), shadows[k])
    return [r for r in rows if r is not None]
