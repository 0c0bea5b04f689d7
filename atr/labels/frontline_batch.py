"""Frontline batches: feedback on decided items becomes a labelled dataset folder.

One batch = every feedback row not yet in a batch, one manifest row per item. Which
verdict labels an item, when it has several:

* an inspection outcome beats an analyst verdict (an officer opened the parcel; the
  analyst only saw the image), then
* the latest verdict (`at`, then `received_at`) wins.

The superseded verdicts go into the row's `meta` and are marked as consumed by the same
batch, so they never resurface; two analysts whose verdicts differ set
`meta.analysts_disagree`. The winning verdict's boxes (an analyst's corrections in Label
Studio) become the row's `boxes`, in the row image's pixels. A verdict on an item that
already went into an earlier batch lands in a new batch; `meta.previous_batches` names
the older ones, and a consumer combining batches keeps the row from the latest batch
(names sort by time).

Order of operations, so nothing acknowledged is lost and nothing is counted twice: the
folder is written atomically first (DatasetWriter), then the feedback rows are marked
in one transaction that only touches rows still unmarked; if the marking fails or
finds a row another process already took, the folder is removed again.

A dual-energy upload becomes the row's `raw` pair plus a rendered `image`; which uploads
are dual energy is decided by the model that scored them (atr/labels/frontline_images.py).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from atr.data.dataset_writer import DatasetWriter
from atr.data.splits import DEFAULT_FRACTIONS, assign_splits, with_strata
from atr.labels.frontline_images import SpecLookup, UploadUnusable, inspect_upload
from atr.labels.frontline_rows import LabelledItem, provenance, utc, verdict_boxes
from atr.policy.taxonomy import LOW_RISK_DEFINITIONS, Taxonomy
from atr.store.feedback_join import joined_decision
from atr.store.image_store import ImageStore
from atr.store.prediction_store import Feedback, Prediction

log = logging.getLogger(__name__)
SOURCE = "frontline"
# Higher wins: an opened parcel is ground truth, an analyst's verdict is a reading of the image.
SOURCE_RANK = {"inspection": 2, "analyst": 1}
_CHUNK = 500  # ids per IN (...) clause: well under every database's parameter limit


class BatchConflict(ValueError):  # ValueError: the CLI shows its message, no traceback
    """Feedback rows were taken by another batch while this one was being written."""


@dataclass
class FrontlineBatch:
    path: Path | None  # None: nothing written (no new feedback, or fewer than min_items)
    name: str
    items: int = 0
    feedback_rows: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # item_id -> why (left unbatched)


def batch_name(now: datetime, items: int) -> str:
    """`2026-11-25T170012-42`: UTC time to the second, then the item count; sorts by time."""
    return f"{now.astimezone(UTC):%Y-%m-%dT%H%M%S}-{items}"


def write_frontline_batch(
    sessions: sessionmaker[Session],
    images: ImageStore,
    taxonomy: Taxonomy,
    batch_dir: str | Path,
    *,
    splits: Mapping[str, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    min_items: int = 1,
    batch_size: int = 1000,
    now: datetime | None = None,
    model_specs: SpecLookup | None = None,
) -> FrontlineBatch:
    """Write `batch_dir/<name>` from unbatched feedback and mark that feedback as taken.

    Items whose feedback cannot be used (no stored prediction or image, unknown class,
    contradictory labels, a possible dual-energy upload whose model `model_specs` cannot
    resolve) are left unbatched and listed in `skipped`.
    """
    now = now or datetime.now(UTC)
    with sessions() as s:
        pending = list(
            s.scalars(select(Feedback).where(Feedback.batch.is_(None)).order_by(Feedback.id))
        )
        by_item: dict[str, list[Feedback]] = {}
        for fb in pending:
            by_item.setdefault(fb.item_id, []).append(fb)
        predictions, earlier = _lookup(s, list(by_item))
    items, skipped = _collect(by_item, predictions, earlier, images, taxonomy, model_specs)
    result = FrontlineBatch(None, batch_name(now, len(items)), len(items), skipped=skipped)
    if not items or len(items) < max(min_items, 1):
        log.info("frontline batch: %d usable item(s), min_items=%d: nothing written",
                 len(items), min_items)
        return result
    out = Path(batch_dir) / result.name
    ids = [fb.id for it in items.values() for fb in (it.winner, *it.others)]
    _write(out, items, images, taxonomy, splits, seed, batch_size, result.name)
    try:
        with sessions.begin() as s:
            mark_feedback(s, ids, result.name)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    result.path, result.feedback_rows = out, len(ids)
    return result


def mark_feedback(session: Session, ids: Sequence[int], name: str) -> None:
    """Set `batch` on exactly these rows; refuse if any was taken meanwhile (no double count)."""
    taken = 0
    for k in range(0, len(ids), _CHUNK):
        chunk = list(ids[k : k + _CHUNK])
        res = session.execute(
            update(Feedback)
            .where(Feedback.id.in_(chunk), Feedback.batch.is_(None))
            .values(batch=name)
        )
        taken += res.rowcount
    if taken != len(ids):
        raise BatchConflict(
            f"batch {name}: {len(ids) - taken} feedback row(s) went to another batch meanwhile; "
            "this batch is withdrawn, run again"
        )


def _lookup(
    s: Session, item_ids: list[str]
) -> tuple[dict[str, list[Prediction]], dict[str, list[str]]]:
    """Per item: its decisions with a stored image (oldest first), and earlier batches."""
    preds: dict[str, list[Prediction]] = {}
    earlier: dict[str, list[str]] = {}
    for k in range(0, len(item_ids), _CHUNK):
        chunk = item_ids[k : k + _CHUNK]
        for p in s.scalars(
            select(Prediction)
            .where(Prediction.item_id.in_(chunk), Prediction.image_ref.is_not(None),
                   Prediction.image_pruned_at.is_(None))  # retention removed the bytes
            .order_by(Prediction.created_at, Prediction.id)
        ):
            preds.setdefault(p.item_id, []).append(p)
        for item_id, name in s.execute(
            select(Feedback.item_id, Feedback.batch)
            .where(Feedback.item_id.in_(chunk), Feedback.batch.is_not(None))
            .distinct()
        ):
            earlier.setdefault(item_id, []).append(name)
    return preds, {k: sorted(v) for k, v in earlier.items()}


def _collect(
    by_item: dict[str, list[Feedback]],
    predictions: dict[str, list[Prediction]],
    earlier: dict[str, list[str]],
    images: ImageStore,
    taxonomy: Taxonomy,
    model_specs: SpecLookup | None,
) -> tuple[dict[str, LabelledItem], dict[str, str]]:
    items: dict[str, LabelledItem] = {}
    skipped: dict[str, str] = {}
    for item_id, rows in by_item.items():
        ranked = sorted(rows, key=_verdict_key, reverse=True)
        winner = ranked[0]
        labels = dict(winner.labels or {})
        unknown = sorted(set(labels) - {*taxonomy.names, *LOW_RISK_DEFINITIONS})
        if unknown:
            skipped[item_id] = f"feedback {winner.id}: unknown class(es) {unknown}"
            continue
        flags = {c: int(labels.get(c, 0)) for c in taxonomy.names}
        # An officer's verdict labels every class (an analyst's reads the whole image), so
        # both truths follow from the classes when the verdict does not state them; the
        # rows are complete (no meta.complete_labels), so no_threat is positive evidence
        # and a model trained on either definition can learn from the batch.
        paper_only = int(labels.get("paper_only", taxonomy.paper_only(flags)))
        if paper_only and not taxonomy.paper_only(flags):
            skipped[item_id] = f"feedback {winner.id}: paper_only=1 contradicts classes {flags}"
            continue
        no_threat = int(labels.get("no_threat", taxonomy.no_threat(flags)))
        if no_threat != taxonomy.no_threat(flags):
            skipped[item_id] = (f"feedback {winner.id}: no_threat={no_threat} contradicts "
                                f"classes {flags}")
            continue
        prediction = _prediction_for(predictions.get(item_id, []), winner.at)
        if prediction is None:
            skipped[item_id] = "no stored prediction with an image"
            continue
        try:
            upload = inspect_upload(images, str(prediction.image_ref), prediction.model_name,
                                    prediction.model_version, model_specs)
        except UploadUnusable as e:
            skipped[item_id] = str(e)
            continue
        items[item_id] = LabelledItem(
            winner, ranked[1:], prediction, flags, paper_only, no_threat, upload,
            earlier.get(item_id, [])
        )
    for item_id, why in skipped.items():
        log.warning("frontline batch: item %s left unbatched: %s", item_id, why)
    return items, skipped


def _verdict_key(fb: Feedback) -> tuple[Any, ...]:
    return (SOURCE_RANK.get(fb.source, 0), utc(fb.at), utc(fb.received_at), fb.id)


def _prediction_for(rows: list[Prediction], at: datetime | None) -> Prediction | None:
    """Of the item's decisions with an image, the one the verdict joins (the image it is
    about): the store's one rule, atr.store.feedback_join."""
    return joined_decision(rows, at)


def _write(
    out: Path,
    items: dict[str, LabelledItem],
    images: ImageStore,
    taxonomy: Taxonomy,
    splits: Mapping[str, float],
    seed: int,
    batch_size: int,
    name: str,
) -> None:
    frame = pd.DataFrame(
        [{"item_id": k, "paper_only": it.paper_only, "no_threat": it.no_threat, **it.flags}
         for k, it in items.items()]
    )
    split = assign_splits(with_strata(frame, taxonomy), splits, seed)
    info = {"batch": name, "feedback_rows": sum(1 + len(it.others) for it in items.values())}
    with DatasetWriter(out, taxonomy, source=SOURCE, batch_size=batch_size, info=info) as w:
        for (item_id, it), sp in zip(items.items(), split.tolist(), strict=True):
            p = it.prediction
            # the original bytes as the scanner sent them, or for a dual-energy scan
            # its rendered picture + the pair as `raw`
            row = it.upload.row(images.get(str(p.image_ref)))
            w.add(
                item_id,
                **row,
                boxes=verdict_boxes(it.winner, row["image"], taxonomy),
                split=sp,
                scanner_id=p.scanner_id,
                labels=it.flags,
                paper_only=it.paper_only,
                no_threat=it.no_threat,
                meta=provenance(it),
            )
