"""The analysts' label queue: which decided items are worth a human label most.

Value of a label for a stored prediction without feedback (the latest one per item):

* `review_bonus` if the line sent it to REVIEW: the policy itself was unsure, and
  those labels teach the model exactly where it hesitates;
* uncertainty in [0, 1]: with a policy, how close each score sits to its threshold
  (the policy's low-risk output, paper_only or no_threat, to the clear threshold, each
  threat to its inspect threshold; scores the policy has no threshold for, e.g. another
  model's low-risk output, count nothing), measured
  in logits so that 0.02 vs 0.05 counts as close as 0.4 vs 0.5; without a policy, the
  binary entropy of each score (peaks at 0.5). The largest over the outputs counts;
* `drift_bonus` if its scanner has an unhandled drift event (an event without a
  scanner is fleet-wide and counts for every scanner): labels from a drifted scanner
  are what retraining needs.

`refresh_queue` keeps one `LabelTask` per item: it inserts new items, re-ranks open
tasks (a drift event may have appeared since), and closes open tasks whose item got
feedback meanwhile. Exported and labelled tasks are left alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from atr.policy.decision import Policy
from atr.store.prediction_store import DriftEvent, Feedback, LabelTask, Prediction

REASON_MAX = 200  # LabelTask.reason column width
_EPS = 1e-6


@dataclass(frozen=True)
class QueueWeights:
    review_bonus: float = 1.0
    drift_bonus: float = 1.0
    window_days: float | None = 30.0  # only decisions this recent; None: all of them


def uncertainty(scores: Mapping[str, float], policy: Policy | None) -> tuple[float, str]:
    """(u in [0, 1], the output that makes it) for one prediction's scores."""
    best, why = 0.0, ""
    for output, raw in (scores or {}).items():
        s = _clip(raw)
        if s is None:
            continue
        thr = _threshold(output, policy) if policy is not None else None
        if policy is None:
            u = -(s * math.log(s) + (1 - s) * math.log(1 - s)) / math.log(2)
            text = f"{output} {s:.2f}"
        elif thr is None:
            continue  # a threshold-less output (a policy that never clears) decides nothing
        else:
            u = math.exp(-abs(_logit(s) - _logit(thr)))
            text = f"{output} {s:.2f} near {thr:.2f}"
        if u > best:
            best, why = u, text
    return best, why


def label_value(
    prediction: Prediction,
    policy: Policy | None,
    drifted: Mapping[str | None, str],
    weights: QueueWeights,
) -> tuple[float, str]:
    """(priority, reason) of a label for this prediction; higher is worth more."""
    u, why = uncertainty(prediction.scores or {}, policy)
    priority, reasons = u, [f"uncertainty {u:.2f} ({why})" if why else "uncertainty 0"]
    if prediction.decision == "REVIEW":
        priority += weights.review_bonus
        reasons.insert(0, "REVIEW")
    drift = drifted.get(prediction.scanner_id) or drifted.get(None)
    if drift:
        priority += weights.drift_bonus
        reasons.append(drift)
    return priority, "; ".join(reasons)[:REASON_MAX]


def refresh_queue(
    sessions: sessionmaker[Session],
    policy: Policy | None = None,
    weights: QueueWeights | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Bring `label_queue` up to date with the store; returns counts of what changed."""
    weights = weights or QueueWeights()
    now = now or datetime.now(UTC)
    counts = {"added": 0, "updated": 0, "closed": 0}
    with sessions.begin() as s:
        has_feedback = set(s.scalars(select(Feedback.item_id).distinct()))
        tasks = {t.item_id: t for t in s.scalars(select(LabelTask))}
        for item_id, task in tasks.items():
            if task.status == "open" and item_id in has_feedback:
                task.status = "labelled"  # an inspection outcome arrived first
                counts["closed"] += 1
        drifted = _drifted_scanners(s)
        for pred in _latest_unlabelled(s, has_feedback, weights, now):
            priority, reason = label_value(pred, policy, drifted, weights)
            task = tasks.get(pred.item_id)
            if task is None:
                s.add(LabelTask(item_id=pred.item_id, prediction_id=pred.id, priority=priority,
                                reason=reason, status="open", created_at=now))
                counts["added"] += 1
            elif task.status == "open":
                task.prediction_id, task.priority, task.reason = pred.id, priority, reason
                counts["updated"] += 1
    return counts


def open_tasks(session: Session, limit: int) -> list[tuple[LabelTask, Prediction]]:
    """The `limit` most valuable open tasks with the prediction each was ranked on."""
    rows = session.execute(
        select(LabelTask, Prediction)
        .join(Prediction, Prediction.id == LabelTask.prediction_id)
        .where(LabelTask.status == "open")
        .order_by(LabelTask.priority.desc(), LabelTask.id)
        .limit(limit)
    )
    return [(t, p) for t, p in rows.tuples()]


def mark_exported(tasks: list[LabelTask], now: datetime | None = None) -> None:
    at = now or datetime.now(UTC)
    for t in tasks:
        t.status, t.exported_at = "exported", at


def _latest_unlabelled(
    s: Session, has_feedback: set[str], weights: QueueWeights, now: datetime
) -> list[Prediction]:
    """Latest decision with a stored image per item that has no feedback yet."""
    q = select(Prediction).where(Prediction.image_ref.is_not(None),
                                 Prediction.image_pruned_at.is_(None))  # retention: gone
    if weights.window_days is not None:
        q = q.where(Prediction.created_at >= now - timedelta(days=weights.window_days))
    latest: dict[str, Prediction] = {}
    for p in s.scalars(q.order_by(Prediction.created_at, Prediction.id)):
        if p.item_id not in has_feedback:
            latest[p.item_id] = p  # later rows overwrite earlier ones
    return list(latest.values())


def _drifted_scanners(s: Session) -> dict[str | None, str]:
    """scanner_id (None: fleet-wide) -> 'drift on <scanner>: <kinds>' for unhandled events."""
    kinds: dict[str | None, set[str]] = {}
    for ev in s.scalars(select(DriftEvent).where(DriftEvent.handled.is_(False))):
        kinds.setdefault(ev.scanner_id, set()).add(ev.kind)
    return {
        sc: f"drift on {sc or 'all scanners'} ({', '.join(sorted(k))})" for sc, k in kinds.items()
    }


def _threshold(output: str, policy: Policy) -> float | None:
    if output == policy.low_risk:  # the clear output: paper_only or no_threat
        return None if policy.clears_nothing else float(policy.clear_threshold)
    return policy.inspect_thresholds.get(output)


def _clip(value: Any) -> float | None:
    try:
        s = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(s) else min(max(s, _EPS), 1 - _EPS)


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1 - _EPS)
    return math.log(p / (1 - p))
