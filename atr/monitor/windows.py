"""Current windows: the most recent predictions of one scanner, with any feedback labels.

A window is the last `size` scored predictions of a scanner (per model version: the
embedding of one model means nothing against another's reference). The rule looks at
`count` windows that end `step` items apart, so the store is read once per pass for
size + (count - 1) * step predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from atr.monitor.reference import monitor_frame
from atr.package.image_stats import STAT_NAMES
from atr.store.feedback_join import decisions_by_item, joined_id
from atr.store.prediction_store import Feedback, Prediction

_PAGE = 2000


def scanners(session: Session, model_version: str | None = None) -> list[str]:
    query = select(Prediction.scanner_id).distinct().order_by(Prediction.scanner_id)
    if model_version is not None:
        query = query.where(Prediction.model_version == model_version)
    return [s for s in session.scalars(query) if s]


def recent_predictions(
    session: Session,
    scanner_id: str,
    limit: int,
    outputs: Sequence[str],
    model_version: str | None = None,
) -> pd.DataFrame:
    """The newest `limit` usable predictions of a scanner, oldest first, as a monitor frame.

    Usable = scored: error decisions (undecodable image, timeout) carry no scores or
    embedding and are skipped, not counted in the window.
    """
    query = select(Prediction).where(Prediction.scanner_id == scanner_id)
    if model_version is not None:
        query = query.where(Prediction.model_version == model_version)
    query = query.order_by(Prediction.created_at.desc(), Prediction.id.desc())
    rows: list[Prediction] = []
    offset = 0
    while len(rows) < limit:
        page = list(session.scalars(query.offset(offset).limit(_PAGE)))
        rows += [p for p in page if _scored(p, outputs)]
        offset += _PAGE
        if len(page) < _PAGE:
            break
    rows = rows[:limit][::-1]
    return predictions_frame(rows, outputs, latest_labels(session, [p.item_id for p in rows]))


def latest_labels(session: Session, item_ids: Sequence[str]) -> dict[int, dict[str, int]]:
    """{prediction id: labels}: each item's newest verdict (an analyst can correct an
    earlier one), on the one decision it joins (atr.store.feedback_join)."""
    newest: dict[str, Feedback] = {}
    ids = sorted(set(item_ids))
    for start in range(0, len(ids), 500):  # SQLite caps bound parameters per query
        query = (select(Feedback).where(Feedback.item_id.in_(ids[start : start + 500]))
                 .order_by(Feedback.at, Feedback.id))
        for fb in session.scalars(query):
            newest[fb.item_id] = fb
    decisions = decisions_by_item(session, list(newest))
    return {pid: dict(fb.labels or {}) for item, fb in newest.items()
            if (pid := joined_id(decisions, item, fb.at)) is not None}


def _scored(p: Prediction, outputs: Sequence[str]) -> bool:
    return bool(p.embedding) and bool(p.scores) and all(o in p.scores for o in outputs) \
        and bool(p.image_stats)


def predictions_frame(
    rows: Sequence[Prediction], outputs: Sequence[str], labels: dict[int, dict[str, int]]
) -> pd.DataFrame:
    records = []
    for p in rows:
        rec = {"item_id": p.item_id, "scanner_id": p.scanner_id, "created_at": p.created_at,
               "model_version": p.model_version, "decision": p.decision, "reason": p.reason,
               "embedding": np.asarray(p.embedding, np.float32)}
        scores = p.scores or {}
        stats = p.image_stats or {}
        rec.update({f"score_{o}": float(scores[o]) for o in outputs})
        rec.update({n: float(stats.get(n, np.nan)) for n in STAT_NAMES})
        truth = labels.get(p.id, {})  # keyed by decision: a verdict labels one of them
        rec.update({o: float(truth[o]) if o in truth else np.nan for o in outputs})
        records.append(rec)
    columns = ["item_id", "scanner_id", "created_at", "model_version", "decision", "reason",
               "embedding", *[f"score_{o}" for o in outputs], *STAT_NAMES, *outputs]
    return monitor_frame(pd.DataFrame.from_records(records, columns=columns), list(outputs))


def window_ends(n_items: int, size: int, step: int, count: int) -> list[int]:
    """End positions (exclusive) of up to `count` full windows, oldest first; the last
    one ends at the newest item."""
    ends = [n_items - i * step for i in range(count)]
    return [e for e in reversed(ends) if e >= size]


def sliding_windows(frame: pd.DataFrame, size: int, step: int, count: int) -> list[pd.DataFrame]:
    """Up to `count` windows of `size` rows ending `step` rows apart, oldest first."""
    if size < 1 or step < 1:
        raise ValueError(f"window size and step must be >= 1, got {size}, {step}")
    return [frame.iloc[e - size : e].reset_index(drop=True)
            for e in window_ends(len(frame), size, step, count)]
