"""One micro-batch from images to stored decisions: score on the model read once for the
whole batch, apply its policy (per-scanner thresholds), then the line's rules
(atr.policy.line_rules: plausibility, audit, safe mode), build the prediction rows.

Runs in the scoring thread. Every item leaves with a decision: an item that could not be
scored is INSPECTed with a reason code, never CLEARed (fail-safe). Each row records what
makes a release explainable after the fact: the policy's own decision (`would_be`), the
threshold applied, the scanner's state, whether it was an audit, the plausibility figures.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from atr.package.localisation import localise
from atr.package.plausibility import assess_figures

# The fail-safe reason codes (each sends the item to INSPECT) are atr.package.reasons',
# shared with the pyfunc; the ones this module does not use itself are re-exported for
# the request side (scan_service, api_scans).
from atr.package.reasons import FAILSAFE_REASONS as FAILSAFE_REASONS
from atr.package.reasons import IMAGE_TOO_LARGE as IMAGE_TOO_LARGE
from atr.package.reasons import IMAGE_UNREADABLE as IMAGE_UNREADABLE
from atr.package.reasons import MODEL_ERROR, NO_MODEL
from atr.package.reasons import TIMEOUT as TIMEOUT
from atr.policy.decision import Decision
from atr.policy.line_rules import line_decision
from serving.line_state import LineState
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
    # what the plausibility checks read, measured with the decode (atr.package.plausibility)
    figures: dict[str, float] | None = None
    # 128 random bits as 32 hex digits, like uuid4().hex, at a fifth of its cost
    request_id: str = field(default_factory=lambda: os.urandom(16).hex())
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
                   shadow: dict[str, Any] | None = None,
                   line: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `predictions` row (and, less the embedding/stats, the response body); `line`:
    would_be, audit, checks, scanner_state, clear_threshold (none for fail-safe rows)."""
    return {
        "request_id": scan.request_id, "item_id": scan.item_id, "scanner_id": scan.scanner_id,
        "created_at": datetime.now(UTC),
        "model_name": model.name if model else None,
        "model_version": model.version if model else None,
        "decision": decision, "reason": reason, "scores": scores, "embedding": embedding,
        "image_stats": scan.image_stats, "image_ref": scan.image_ref,
        "latency_ms": round((time.monotonic() - scan.started) * 1000.0, 3), "shadow": shadow,
        "would_be": None, "audit": False, "checks": None, "scanner_state": None,
        "clear_threshold": None, "localisation": None, **(line or {}),
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


def score_batch(model: LoadedModel, images: list[np.ndarray], scanner_ids: list[str],
                heatmap: bool = False
                ) -> tuple[list[dict[str, float]], np.ndarray, list[str], list[str],
                           np.ndarray | None]:
    """(scores per item, embeddings, decisions, reasons, heat-maps or None) for images on
    one model; heat-maps only when asked for and the package has them (same ONNX run)."""
    if heatmap and getattr(model.scorer, "localisation", None) is not None:
        scores, emb, heat = model.scorer.score_images_localised(images)
    else:
        (scores, emb), heat = model.scorer.score_images(images), None
    decisions, reasons = model.policy.decide(scores, scanner_ids)
    outputs = model.scorer.outputs
    per_item = [{o: _finite(s) for o, s in zip(outputs, row, strict=True)}
                for row in scores.tolist()]
    return per_item, emb, [d.value for d in decisions], list(reasons), heat


def evidence(model: LoadedModel, heat: np.ndarray, image: np.ndarray) -> dict[str, Any] | None:
    """The row's `localisation` (atr.package.localisation) for one item that is not
    cleared; None if it cannot be made: where the evidence is helps the analyst, but its
    failure must not touch the decision, which is already REVIEW or INSPECT."""
    try:
        return localise(heat, model.scorer.localisation, model.scorer.preprocess,
                        *image.shape[:2])
    except Exception:
        log.exception("localisation failed on a %s image", image.shape)
        return None


def shadow_results(shadow: LoadedModel | None, images: list[np.ndarray],
                   scanner_ids: list[str]) -> list[Any]:
    """The challenger's verdict per image, for Prediction.shadow only (never the decision)."""
    if shadow is None or not images:
        return [None] * len(images)
    try:
        scores, _, decisions, reasons, _ = score_batch(shadow, images, scanner_ids)
    except Exception as exc:  # a broken challenger must not touch the line
        return [{"version": shadow.version, "error": str(exc)[:200]}] * len(images)
    return [{"name": shadow.name, "version": shadow.version, "scores": s, "decision": d,
             "reason": r} for s, d, r in zip(scores, decisions, reasons, strict=True)]


def line_fields(scan: PendingScan, decision: str, reason: str, model: LoadedModel,
                embedding: np.ndarray, line: LineState,
                check_plausibility: bool) -> tuple[str, str, dict[str, Any]]:
    """The line's rules on one scored item: (decision, reason, the row's line fields)."""
    checks, implausible, blank = None, None, False
    if check_plausibility:
        if scan.figures is None:  # not measured: the caller sends the item to INSPECT
            raise ValueError(f"item {scan.item_id}: no plausibility figures")
        found = assess_figures(model.scorer.plausibility, scan.figures, embedding)
        checks, implausible, blank = found.to_record(), found.check, found.blank
    tight = line.tightened(scan.scanner_id, model.version)
    drawn, draw = line.audits.draw(scan.scanner_id, scan.item_id, tight)
    cause = line.safe_mode(scan.scanner_id, model.policy)
    out = line_decision(decision, reason, implausible=implausible, blank=blank,
                        audit_drawn=drawn, safe_mode=cause is not None,
                        fallback=line.settings.safe_mode_fallback)
    fields = {"would_be": {"decision": decision, "reason": reason, "audit_draw": draw,
                           "audit_share": line.audits.share_for(scan.scanner_id, tight),
                           "audit_normal_share": line.audits.share_for(scan.scanner_id),
                           "audit_tightened": tight,
                           "safe_mode_cause": cause},
              "audit": out.audit, "checks": checks,
              "scanner_state": "safe_mode" if cause is not None else "normal",
              "clear_threshold": _finite(model.policy.threshold_for(scan.scanner_id))}
    return out.decision, out.reason, fields


def decide_batch(batch: list[PendingScan], model: LoadedModel | None,
                 shadow: LoadedModel | None, embedding_dims: int, line: LineState,
                 check_plausibility: bool = True,
                 localisation: bool = True) -> list[dict[str, Any]]:
    """A row per item of the batch (in order), decided on `model`, then the line's rules;
    with `localisation` (serve.localisation), an item whose final decision is not CLEAR
    also gets where the evidence is, from the heat-map of the same ONNX run. A CLEAR
    never pays the box extraction."""
    rows: list[dict[str, Any] | None] = [None] * len(batch)
    todo = [i for i, scan in enumerate(batch) if scan.failure is None]
    for i, scan in enumerate(batch):
        if scan.failure is not None:
            rows[i] = failsafe_row(scan, scan.failure, model)
        elif model is None:
            rows[i] = failsafe_row(scan, NO_MODEL, None)
    if model is not None and todo:
        images = [batch[i].image for i in todo]
        ids = [batch[i].scanner_id for i in todo]
        line.refresh()
        try:
            scores, emb, decisions, reasons, heat = score_batch(  # type: ignore[arg-type]
                model, images, ids, heatmap=localisation)
        except Exception:
            log.exception("model v%s failed on a batch of %d", model.version, len(todo))
            for i in todo:
                rows[i] = failsafe_row(batch[i], MODEL_ERROR, model)
        else:
            shadows = shadow_results(shadow, images, ids)  # type: ignore[arg-type]
            for k, i in enumerate(todo):
                try:
                    decision, reason, fields = line_fields(
                        batch[i], decisions[k], reasons[k], model, emb[k], line,
                        check_plausibility)
                except Exception:  # a rule that cannot be applied never lets it clear
                    log.exception("line rules failed on item %s", batch[i].item_id)
                    rows[i] = failsafe_row(batch[i], MODEL_ERROR, model)
                    continue
                if heat is not None and decision != Decision.CLEAR.value:
                    fields["localisation"] = evidence(model, heat[k], batch[i].image)  # type: ignore[arg-type]
                rows[i] = prediction_row(
                    batch[i], decision, reason, model, scores[k],
                    compact_embedding(emb[k], embedding_dims), shadows[k], fields)
    return [r for r in rows if r is not None]
