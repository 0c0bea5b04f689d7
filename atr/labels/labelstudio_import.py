"""Completed Label Studio annotations -> analyst feedback, each annotation exactly once.

Pulled through label-studio-sdk from the project `atr labels export` fills. One
annotation = one analyst verdict = one `Feedback` row (source `analyst`, `who` the
annotator's email, `at` the annotation's last update), with:

* labels: every class, 1 for the chosen `Choices` and for every box's label (a box of a
  firearm says a firearm is there), 0 for the rest; `paper_only` and `no_threat` follow
  (the analyst read the whole image, as the file import has it);
* boxes: the annotation's rectangles as [{"label", "xyxy"}] in the image's pixels
  (rotated ones by their axis-aligned extent), which the frontline batch writes;
* source_ref `labelstudio:<project>:<annotation id>`, unique in the store: a second
  import adds nothing. An annotation edited in Label Studio after its import updates its
  row while that row is not yet in a frontline batch; once batched the edit is counted
  (`edited_after_batch`) and left for an analyst to post as a new verdict, since a batch
  is immutable.

Two analysts on one task: two annotations, two verdicts, nothing merged away. The
frontline batch takes the latest as the item's label and keeps the other in
`meta.superseded`; when their labels differ the row says `meta.analysts_disagree`, and
the import counts such items (`disagreements`).

A task whose item has no stored decision, or an unknown class, fails the whole import
(one transaction, nothing written), naming the project, task and annotation.
Cancelled (skipped) annotations are no verdict and are ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from atr.data.importers.base import DatasetImportError, Record
from atr.data.importers.labelstudio import add_result
from atr.labels.labelstudio import LabelImportError
from atr.policy.taxonomy import Taxonomy
from atr.store.prediction_store import Feedback, LabelTask, Prediction


def source_ref(project_id: int, annotation_id: int) -> str:
    return f"labelstudio:{project_id}:{annotation_id}"


def verdict_of(annotation: Any, task: Any, taxonomy: Taxonomy, ref: str
               ) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """(labels, pixel boxes) of one annotation."""
    rec = Record(image="", ref=ref, box_units="fraction")
    data = task.data or {}
    for k, result in enumerate(annotation.result or []):
        try:
            add_result(rec, result, f"{ref} result #{k}")
        except DatasetImportError as e:
            raise LabelImportError(str(e)) from None
    unknown = sorted((set(rec.classes) | {b[0] for b in rec.boxes}) - set(taxonomy.names))
    if unknown:
        raise LabelImportError(f"{ref} (item {data.get('item_id')}): class(es) {unknown} not in "
                               f"the taxonomy ({', '.join(taxonomy.names)})")
    sizes = [(r.get("original_width"), r.get("original_height")) for r in annotation.result or []
             if r.get("type") == "rectanglelabels"]
    w, h = next((s for s in sizes if s[0] and s[1]), (data.get("width"), data.get("height")))
    if rec.boxes and not (w and h):
        raise LabelImportError(f"{ref}: rectangles without original_width/height")
    boxes = [{"label": label, "xyxy": [round(x0 * w, 2), round(y0 * h, 2),
                                       round(x1 * w, 2), round(y1 * h, 2)]}
             for label, x0, y0, x1, y1 in rec.boxes]
    present = set(rec.classes) | {b["label"] for b in boxes}
    flags = {c: int(c in present) for c in taxonomy.names}
    labels = {**flags, "paper_only": taxonomy.paper_only(flags),
              "no_threat": taxonomy.no_threat(flags)}
    return labels, boxes


def annotated_tasks(ls: Any, project_id: int) -> list[tuple[Any, list[Any]]]:
    """(task, its non-cancelled annotations) for every task with at least one."""
    out = []
    for task in ls.tasks.list(project=project_id, fields="all"):
        if not task.total_annotations:
            continue
        anns = [a for a in ls.annotations.list(id=task.id) if not a.was_cancelled]
        if anns:
            out.append((task, anns))
    return out


def import_annotations(sessions: sessionmaker[Session], ls: Any, project_id: int,
                       taxonomy: Taxonomy) -> dict[str, int]:
    emails = {u.id: u.email or u.username or f"labelstudio-user:{u.id}"
              for u in ls.users.list()}
    rows = []
    for task, anns in annotated_tasks(ls, project_id):
        item_id = (task.data or {}).get("item_id")
        if not item_id:
            raise LabelImportError(f"project {project_id} task {task.id}: no data.item_id "
                                   "(not a task exported by atr labels)")
        for a in anns:
            ref = f"project {project_id} task {task.id} annotation {a.id}"
            labels, boxes = verdict_of(a, task, taxonomy, ref)
            at = _utc(a.updated_at or a.created_at)
            rows.append((str(item_id), source_ref(project_id, a.id), labels, boxes,
                         emails.get(a.completed_by, f"labelstudio-user:{a.completed_by}"), at,
                         task.id))
    counts = {"annotations": len(rows), "feedback_added": 0, "updated": 0,
              "already_imported": 0, "edited_after_batch": 0, "disagreements": 0}
    with sessions.begin() as s:  # all or nothing
        items = {r[0] for r in rows}
        known = set(s.scalars(select(Prediction.item_id).where(Prediction.item_id.in_(items))))
        for item_id, *_, task_id in rows:
            if item_id not in known:
                raise LabelImportError(f"project {project_id} task {task_id}: item {item_id!r} "
                                       "has no stored prediction; nothing imported")
        stored = {f.source_ref: f for f in s.scalars(
            select(Feedback).where(Feedback.source_ref.in_([r[1] for r in rows])))}
        for item_id, ref, labels, boxes, who, at, _ in rows:
            fb = stored.get(ref)
            if fb is None:
                s.add(Feedback(item_id=item_id, labels=labels, boxes=boxes, source="analyst",
                               who=who, at=at, received_at=datetime.now(UTC), source_ref=ref))
                counts["feedback_added"] += 1
            elif (fb.labels, fb.boxes or []) == (labels, boxes):
                counts["already_imported"] += 1
            elif fb.batch is None:
                fb.labels, fb.boxes, fb.at, fb.who = labels, boxes, at, who
                counts["updated"] += 1
            else:
                counts["edited_after_batch"] += 1
        by_item: dict[str, set[str]] = {}
        for item_id, _, labels, *_ in rows:
            by_item.setdefault(item_id, set()).add(repr(sorted(labels.items())))
        counts["disagreements"] = sum(len(v) > 1 for v in by_item.values())
        for task in s.scalars(select(LabelTask).where(LabelTask.item_id.in_(items))):
            task.status = "labelled"
    return counts


def _utc(dt: datetime | None) -> datetime:
    if dt is None:
        return datetime.now(UTC)
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)
