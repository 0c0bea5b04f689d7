"""Label Studio round trip for the label queue: tasks out, analysts' verdicts back in.

Export writes `tasks.json` (Label Studio's JSON import format) and `labelling.xml`
(the project's labelling config) beside it. Each task's image is one Label Studio can
open without an upload:

* local storage (default): `/data/local-files/?d=<path relative to image_root>`. Start
  Label Studio with `LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true` and
  `LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<image_root>` (the runtime root by default), and
  add a Local Files storage on the image store folder (no sync needed for imported tasks);
* or `image_url_prefix` + the path inside the image store, for images served over HTTP.

The model's verdict rides along as a pre-annotation (`predictions`: the threat classes
at or over their inspect threshold, 0.5 without a policy) and its raw scores in `meta`.

Import reads Label Studio's JSON export of those tasks: every non-cancelled annotation's
`choices` are united (any annotator's threat counts, as in the dataset importer) into
one `Feedback` row per task, source `analyst`. The analyst labels the whole image, so
the classes not chosen are 0 and `paper_only` and `no_threat` follow from the classes
(whichever low-risk definition the served model clears on). A task with an
unknown item id or class fails the whole import (one transaction, nothing written);
re-importing the same export adds nothing (same item, annotator and time = same verdict).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from atr.data.importers.base import Record
from atr.data.importers.labelstudio import add_result  # the importer's result parser
from atr.data.manifest import atomic_write_bytes
from atr.policy.decision import Policy
from atr.policy.taxonomy import Taxonomy
from atr.store.image_store import ImageStore
from atr.store.prediction_store import Feedback, LabelTask, Prediction

CONFIG_FILE = "labelling.xml"
FROM_NAME, TO_NAME = "classes", "image"


class LabelImportError(ValueError):
    """A Label Studio export that cannot become feedback; names the task."""


@dataclass(frozen=True)
class Verdict:
    task_id: Any
    item_id: str
    classes: frozenset[str]
    who: str
    at: datetime


def labelling_config(taxonomy: Taxonomy) -> str:
    choices = "\n".join(f"    <Choice value={quoteattr(n)}/>" for n in taxonomy.names)
    return (
        "<View>\n"
        f'  <Image name="{TO_NAME}" value="$image"/>\n'
        f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="multiple" '
        'showInline="true">\n'
        f"{choices}\n  </Choices>\n</View>\n"
    )


def image_url(ref: str, images: ImageStore, image_root: Path, url_prefix: str | None) -> str:
    path = images.path(ref)
    if url_prefix:
        return f"{url_prefix.rstrip('/')}/{quote(path.relative_to(images.root).as_posix())}"
    try:
        rel = path.resolve().relative_to(Path(image_root).resolve())
    except ValueError:
        raise ValueError(
            f"image store {images.root} is not under labels.image_root {image_root} "
            "(Label Studio's LOCAL_FILES_DOCUMENT_ROOT): set labels.image_root to a folder "
            "above it, or labels.image_url_prefix"
        ) from None
    return f"/data/local-files/?d={quote(rel.as_posix())}"


def export_labelstudio(
    tasks: list[tuple[LabelTask, Prediction]],
    out_path: str | Path,
    *,
    taxonomy: Taxonomy,
    images: ImageStore,
    image_root: str | Path,
    image_url_prefix: str | None = None,
    policy: Policy | None = None,
) -> list[dict[str, Any]]:
    """Write Label Studio import tasks (and the labelling config beside them)."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = [
        _task(t, p, taxonomy, image_url(str(p.image_ref), images, Path(image_root),
                                          image_url_prefix), policy)
        for t, p in tasks
    ]
    atomic_write_bytes(out.parent / CONFIG_FILE, labelling_config(taxonomy).encode())
    atomic_write_bytes(out, json.dumps(payload, indent=1).encode())
    return payload


def _task(
    task: LabelTask, p: Prediction, taxonomy: Taxonomy, url: str, policy: Policy | None
) -> dict[str, Any]:
    scores = {k: float(v) for k, v in (p.scores or {}).items()}
    at = {t: policy.inspect_thresholds.get(t, 0.5) if policy else 0.5 for t in taxonomy.threats}
    guess = [t for t in taxonomy.threats if scores.get(t, 0.0) >= at[t]]
    return {
        "data": {"image": url, "item_id": task.item_id, "scanner_id": p.scanner_id,
                 "decision": p.decision, "priority": round(task.priority, 4)},
        "meta": {"label_task_id": task.id, "prediction_id": p.id, "request_id": p.request_id,
                 "reason": task.reason, "scores": scores},
        "predictions": [{
            "model_version": f"{p.model_name}:{p.model_version}",
            "score": max(scores.values(), default=0.0),
            # no threat over its threshold: no pre-annotation (an empty `choices` result
            # is not a valid Label Studio region)
            "result": [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
                        "value": {"choices": guess}}] if guess else [],
        }],
    }


def read_verdicts(export_path: str | Path, taxonomy: Taxonomy) -> list[Verdict]:
    """Parse a Label Studio JSON export; tasks nobody annotated are skipped (unlabelled)."""
    path = Path(export_path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise LabelImportError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(tasks, list):
        raise LabelImportError(f"{path}: expected a JSON list of tasks (Label Studio JSON export)")
    verdicts = []
    for k, task in enumerate(tasks):
        tid = task.get("id", f"#{k}") if isinstance(task, dict) else f"#{k}"
        ref = f"{path.name} task id {tid}"
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or not data.get("item_id"):
            raise LabelImportError(f"{ref}: no data.item_id (not a task exported by atr labels)")
        anns = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        if not anns:
            continue
        rec = Record(image=str(data.get("image", "")), ref=ref)
        for a in anns:
            for r, result in enumerate(a.get("result") or []):
                add_result(rec, result, f"{ref} annotation id {a.get('id', '?')} result #{r}")
        unknown = sorted(set(rec.classes) - set(taxonomy.names))
        if unknown:
            raise LabelImportError(
                f"{ref} (item {data['item_id']}): class(es) {unknown} not in the taxonomy "
                f"({', '.join(taxonomy.names)})"
            )
        verdicts.append(Verdict(tid, str(data["item_id"]), frozenset(rec.classes),
                                ", ".join(sorted({_who(a) for a in anns})),
                                max(_when(a, ref) for a in anns)))
    return verdicts


def import_labelstudio(
    sessions: sessionmaker[Session], export_path: str | Path, taxonomy: Taxonomy
) -> dict[str, int]:
    """Label Studio export -> Feedback rows; their label tasks become `labelled`."""
    verdicts = read_verdicts(export_path, taxonomy)
    added = duplicates = 0
    with sessions.begin() as s:  # all or nothing
        items = {v.item_id for v in verdicts}
        known = set(s.scalars(select(Prediction.item_id).where(Prediction.item_id.in_(items))))
        for v in verdicts:
            if v.item_id not in known:
                raise LabelImportError(
                    f"{Path(export_path).name} task id {v.task_id}: item {v.item_id!r} has no "
                    "stored prediction (unknown item id); nothing imported"
                )
        for v in verdicts:
            flags = {c: int(c in v.classes) for c in taxonomy.names}
            # both low-risk truths: the model being served may clear on either
            labels = {**flags, "paper_only": taxonomy.paper_only(flags),
                      "no_threat": taxonomy.no_threat(flags)}
            if _already_imported(s, v):
                duplicates += 1
                continue
            s.add(Feedback(item_id=v.item_id, labels=labels, source="analyst", who=v.who,
                           at=v.at, received_at=datetime.now(UTC)))
            added += 1
        for task in s.scalars(select(LabelTask).where(LabelTask.item_id.in_(items))):
            task.status = "labelled"
    return {"tasks": len(verdicts), "feedback_added": added, "already_imported": duplicates}


def _already_imported(s: Session, v: Verdict) -> bool:
    rows = s.scalars(select(Feedback).where(
        Feedback.item_id == v.item_id, Feedback.source == "analyst", Feedback.who == v.who))
    return any(_naive_utc(r.at) == _naive_utc(v.at) for r in rows)


def _who(annotation: dict[str, Any]) -> str:
    by = annotation.get("completed_by")
    if isinstance(by, dict):  # newer exports expand the user
        return str(by.get("email") or by.get("username") or by.get("id") or "unknown")
    return "unknown" if by is None else f"labelstudio-user:{by}"


def _when(annotation: dict[str, Any], ref: str) -> datetime:
    raw = annotation.get("updated_at") or annotation.get("created_at")
    if not raw:
        raise LabelImportError(f"{ref}: annotation {annotation.get('id', '?')} has no created_at")
    try:
        dt = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise LabelImportError(f"{ref}: annotation time {raw!r} is not ISO 8601") from None
    # UTC before storing: SQLite keeps the wall time and drops the offset.
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def _naive_utc(dt: datetime) -> datetime:
    return (dt if dt.tzinfo is None else dt.astimezone(UTC)).replace(tzinfo=None)
