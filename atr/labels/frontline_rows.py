"""What one row of a frontline batch carries beside its labels (atr/labels/frontline_batch.py):
the winning verdict's boxes, clipped to the row's image, and its provenance in `meta`
(who labelled it, which verdicts it superseded, the decision it labels).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from PIL import Image

from atr.data.box_masks import clip_xyxy
from atr.labels.frontline_images import Upload
from atr.policy.taxonomy import Taxonomy
from atr.store.prediction_store import Feedback, Prediction


@dataclass
class LabelledItem:
    winner: Feedback
    others: list[Feedback]
    prediction: Prediction
    flags: dict[str, int]
    paper_only: int
    no_threat: int
    upload: Upload
    previous_batches: list[str]



def verdict_boxes(fb: Feedback, image: bytes | np.ndarray,
                  taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """The verdict's boxes (an analyst's, atr/labels/labelstudio_import.py), clipped to the
    row's image: [{"label", "xyxy"}] in pixels, classes outside the taxonomy dropped."""
    if not fb.boxes:
        return []
    if isinstance(image, np.ndarray):
        height, width = image.shape[:2]
    else:
        with Image.open(io.BytesIO(image)) as img:  # header only
            width, height = img.size
    out = []
    for b in fb.boxes:
        if b.get("label") not in taxonomy.names:
            continue
        xyxy = clip_xyxy(b["xyxy"], width, height)
        if xyxy is not None:
            out.append({"label": b["label"], "xyxy": xyxy})
    return out


def provenance(it: LabelledItem) -> dict[str, Any]:
    fb, p = it.winner, it.prediction
    # Two analysts who read the same image differently: the latest verdict labels the
    # row, and the row says so (for review; the other verdict is in `superseded`).
    disagree = fb.source == "analyst" and any(
        o.source == "analyst" and verdict_flags(o) != verdict_flags(fb) for o in it.others)
    return {
        "analysts_disagree": disagree,
        "label_source": fb.source,
        "labelled_by": fb.who,
        "labelled_at": iso(fb.at),
        "feedback_id": fb.id,
        "superseded": [
            {"feedback_id": o.id, "source": o.source, "who": o.who, "at": iso(o.at)}
            for o in it.others
        ],
        "previous_batches": it.previous_batches,
        "request_id": p.request_id,
        "decided_at": iso(p.created_at),
        "model_name": p.model_name,
        "model_version": p.model_version,
        "decision": p.decision,
        "reason": p.reason,
        "scores": p.scores,
        "image_ref": p.image_ref,
        **it.upload.meta(),
    }


def verdict_flags(fb: Feedback) -> dict[str, int]:
    return {k: int(v) for k, v in (fb.labels or {}).items()}


def utc(dt: datetime | None) -> datetime:
    # SQLite hands back naive datetimes; the store writes UTC.
    if dt is None:
        return datetime.min.replace(tzinfo=UTC)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else utc(dt).isoformat()
