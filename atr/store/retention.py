"""Retention of frontline images (personal data from postal items): `atr store prune`.

An image is removed from the image store when every row that references it is older than
the retention period and its item has no feedback (unlabelled). Kept:
* images of labelled items, at any age: they are training data (frontline batches);
* images that an unlabelled old row shares (same bytes, one content address) with a
  labelled or a recent row.
Rows are never deleted, and a row keeps its image_ref (what was scanned, for the audit
trail); `image_pruned_at` says the bytes are gone on purpose, so no reader tries them.

Order, so a crash loses nothing and hides nothing: the files first, then the rows are
marked in one transaction; a run after a crash finds the unmarked rows again (their file
is already gone: delete says so) and marks them. Runs are idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from atr.store.prediction_store import Feedback, Prediction, utcnow

log = logging.getLogger(__name__)
_CHUNK = 500  # refs per IN (...): under every database's parameter limit


class DeletableImages(Protocol):
    def delete(self, ref: str) -> bool: ...


def _labelled() -> Any:
    return exists().where(Feedback.item_id == Prediction.item_id)


def prune_images(sessions: sessionmaker[Session], images: DeletableImages,
                 retention_days: float, *, now: datetime | None = None,
                 dry_run: bool = False) -> dict[str, Any]:
    """Remove the unlabelled images past retention; returns the counts (a dry run counts
    what would be removed and changes nothing)."""
    # at least a day: replicas remember stored images for an hour (atr/store/s3_images.py)
    if retention_days is None or float(retention_days) < 1:
        raise ValueError(f"store.retention_days must be a positive number of days (>= 1), "
                         f"got {retention_days!r}")
    now = now or utcnow()
    cutoff = now - timedelta(days=float(retention_days))
    with sessions() as s:
        expired = list(s.execute(
            select(Prediction.id, Prediction.image_ref)
            .where(Prediction.created_at < cutoff, Prediction.image_ref.is_not(None),
                   Prediction.image_pruned_at.is_(None), ~_labelled())
            .order_by(Prediction.id)))
        labelled_kept = s.scalar(
            select(func.count(Prediction.id)).where(
                Prediction.created_at < cutoff, Prediction.image_ref.is_not(None),
                Prediction.image_pruned_at.is_(None), _labelled())) or 0
        refs = sorted({str(ref) for _, ref in expired})
        shared = _still_needed(s, refs, cutoff)
    doomed = [r for r in refs if r not in shared]
    doomed_set = set(doomed)
    rows = [rid for rid, ref in expired if ref in doomed_set]
    deleted = 0
    if not dry_run:
        for ref in doomed:
            deleted += bool(images.delete(ref))  # False: gone already (an earlier run)
        with sessions.begin() as s:
            for k in range(0, len(rows), _CHUNK):
                s.execute(update(Prediction).where(Prediction.id.in_(rows[k:k + _CHUNK]))
                          .values(image_pruned_at=now))
    report = {"cutoff": cutoff.isoformat(), "retention_days": float(retention_days),
              "dry_run": dry_run, "expired_rows": len(expired), "images_to_remove": len(doomed),
              "images_removed": deleted, "rows_marked": 0 if dry_run else len(rows),
              "images_kept_shared": len(shared), "labelled_rows_kept": int(labelled_kept)}
    log.info("store prune: %s", report)
    return report


def _still_needed(s: Session, refs: Sequence[str], cutoff: datetime) -> set[str]:
    """Those of `refs` that a labelled or a recent row (with its image) also references."""
    keep: set[str] = set()
    for k in range(0, len(refs), _CHUNK):
        keep.update(s.scalars(
            select(Prediction.image_ref).distinct()
            .where(Prediction.image_ref.in_(refs[k:k + _CHUNK]),
                   Prediction.image_pruned_at.is_(None),
                   or_(Prediction.created_at >= cutoff, _labelled()))))
    return keep
