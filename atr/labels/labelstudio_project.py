"""The Label Studio project of the label queue: labelling config, tasks, pre-annotations.

`export_queue` makes (or finds, by title) the project, points a Local Files storage at
the image store and imports the queue's tasks, most valuable first (the queue's
priority: REVIEW, uncertainty, drift), so an analyst working through the project meets
the worst-scored items first (sequential sampling follows task ids, import order).

Labelling config: the taxonomy's classes as image-level `Choices` (multiple; hotkeys
a, s, d, ...) and the threat classes as `RectangleLabels` (hotkeys 1..n). The model's
boxes (`predictions.localisation.boxes`, pixel xyxy) ride along as a prediction in
percent (x, y, width, height of `original_width/height`), so the analyst corrects
boxes rather than draws them; the threats the model flags without a box are pre-ticked
choices. All predictions carry one model_version (`atr`), the project's, so Label
Studio pre-fills every task with them whichever model decided it (the deciding
model's name and version are in the task's data).

Images: `/data/local-files/?d=<path below image_root>`, served by Label Studio from the
image store where it lies (LOCAL_FILES_DOCUMENT_ROOT = image_root), no upload, no copy.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from PIL import Image

from atr.data.box_masks import clip_xyxy
from atr.labels.labelstudio import image_url
from atr.labels.labelstudio_server import load_credentials
from atr.policy.decision import Policy
from atr.policy.taxonomy import Taxonomy
from atr.store.image_store import ImageStore
from atr.store.prediction_store import LabelTask, Prediction

log = logging.getLogger(__name__)
CHOICES, BOXES, IMAGE = "classes", "boxes", "image"
MODEL_VERSION = "atr"
# Letters Label Studio's editor leaves free (r: rectangle tool, u: unselect, h: hide,
# e/b: eraser/brush, v, p, k, o, z: other tools), one per class in taxonomy order.
CHOICE_KEYS = "asdfgjlqwtyixcnm"


def labelling_config(taxonomy: Taxonomy) -> str:
    if len(taxonomy.names) > len(CHOICE_KEYS) or len(taxonomy.threats) > 9:
        raise ValueError(f"taxonomy {taxonomy.name!r}: more classes than hotkeys")
    boxes = "\n".join(f"    <Label value={quoteattr(t)} hotkey=\"{k}\"/>"
                      for k, t in enumerate(taxonomy.threats, start=1))
    choices = "\n".join(f"    <Choice value={quoteattr(n)} hotkey=\"{key}\"/>"
                        for n, key in zip(taxonomy.names, CHOICE_KEYS, strict=False))
    return (
        "<View>\n"
        f'  <Image name="{IMAGE}" value="$image" zoom="true"/>\n'
        f'  <RectangleLabels name="{BOXES}" toName="{IMAGE}">\n{boxes}\n  </RectangleLabels>\n'
        f'  <Choices name="{CHOICES}" toName="{IMAGE}" choice="multiple" showInline="true">\n'
        f"{choices}\n  </Choices>\n</View>\n"
    )


def client(url: str, credentials_path: str | Path) -> Any:
    """An SDK 2.x client; the key: LABEL_STUDIO_API_KEY, else the server's credentials."""
    from label_studio_sdk import LabelStudio

    key = os.environ.get("LABEL_STUDIO_API_KEY") or load_credentials(credentials_path).token
    return LabelStudio(base_url=url, api_key=key, timeout=60)


def ensure_project(ls: Any, title: str, taxonomy: Taxonomy, images: ImageStore) -> int:
    """The project's id: found by title (its config brought up to date) or created; with
    a Local Files storage on the image store (Label Studio serves only files under one)."""
    config = labelling_config(taxonomy)
    project = next((p for p in ls.projects.list() if p.title == title), None)
    if project is None:
        project = ls.projects.create(
            title=title, label_config=config, sampling="Sequential sampling",
            show_collab_predictions=True, show_skip_button=True,
            description="ATR label queue: most valuable first")
    elif project.label_config != config:
        ls.projects.update(id=project.id, label_config=config)
    root = str(Path(images.root).resolve())
    if not any(s.path == root for s in ls.import_storage.local.list(project=project.id)):
        ls.import_storage.local.create(project=project.id, path=root, title="ATR image store",
                                       use_blob_urls=False)
    return int(project.id)


def percent_box(box: dict[str, Any], width: int, height: int) -> dict[str, float] | None:
    """Pixel xyxy -> Label Studio's percent x, y, width, height (clipped to the image)."""
    try:
        clipped = clip_xyxy(box["xyxy"], width, height)
    except (KeyError, TypeError, ValueError):
        return None
    if clipped is None:
        return None
    x0, y0, x1, y1 = clipped
    return {"x": 100 * x0 / width, "y": 100 * y0 / height, "width": 100 * (x1 - x0) / width,
            "height": 100 * (y1 - y0) / height, "rotation": 0}


def pre_annotation(p: Prediction, taxonomy: Taxonomy, size: tuple[int, int],
                   policy: Policy | None) -> dict[str, Any]:
    w, h = size
    result: list[dict[str, Any]] = []
    boxed: set[str] = set()
    for k, box in enumerate((p.localisation or {}).get("boxes") or []):
        label = box.get("label") if isinstance(box, dict) else None
        value = percent_box(box, w, h) if label in taxonomy.threats else None
        if value is None:
            log.warning("prediction %s: box #%d %r not shown (not a threat box in the image)",
                        p.id, k, box)
            continue
        boxed.add(str(label))
        result.append({"id": f"atr{p.id}-{k}", "from_name": BOXES, "to_name": IMAGE,
                       "type": "rectanglelabels", "original_width": w, "original_height": h,
                       "image_rotation": 0, "score": float(box.get("score") or 0.0),
                       "value": {**value, "rectanglelabels": [label]}})
    scores = {k: float(v) for k, v in (p.scores or {}).items()}
    at = {t: policy.inspect_thresholds.get(t, 0.5) if policy else 0.5 for t in taxonomy.threats}
    flagged = [t for t in taxonomy.threats if scores.get(t, 0.0) >= at[t] and t not in boxed]
    if flagged:  # an empty `choices` result is not a valid region
        result.append({"id": f"atr{p.id}-c", "from_name": CHOICES, "to_name": IMAGE,
                       "type": "choices", "value": {"choices": flagged}})
    return {"model_version": MODEL_VERSION, "score": max(scores.values(), default=0.0),
            "result": result}


def queue_task(task: LabelTask, p: Prediction, taxonomy: Taxonomy, images: ImageStore,
               image_root: Path, policy: Policy | None) -> dict[str, Any]:
    ref = str(p.image_ref)
    with Image.open(io.BytesIO(images.get(ref))) as img:  # header only
        size = img.size
    scores = {k: round(float(v), 4) for k, v in (p.scores or {}).items()}
    return {
        "data": {"image": image_url(ref, images, image_root, None), "item_id": task.item_id,
                 "label_task_id": task.id, "prediction_id": p.id, "scanner_id": p.scanner_id,
                 "decision": p.decision, "reason": task.reason,
                 "priority": round(task.priority, 4), "model": f"{p.model_name}:{p.model_version}",
                 "width": size[0], "height": size[1], "scores": scores},
        "predictions": [pre_annotation(p, taxonomy, size, policy)],
    }


def export_queue(ls: Any, project_id: int, pairs: Sequence[tuple[LabelTask, Prediction]],
                 taxonomy: Taxonomy, images: ImageStore, image_root: Path,
                 policy: Policy | None = None) -> list[int]:
    """Import the tasks (in the given order: most valuable first); their Label Studio ids."""
    if not pairs:
        return []
    payload = [queue_task(t, p, taxonomy, images, image_root, policy) for t, p in pairs]
    done = ls.projects.import_tasks(id=project_id, request=payload, return_task_ids=True)
    ids = [int(i) for i in (done.task_ids or [])]
    if len(ids) != len(payload):
        raise RuntimeError(f"Label Studio imported {len(ids)} of {len(payload)} task(s)")
    # predictions of this version pre-fill the editor (settable once some exist)
    ls.projects.update(id=project_id, model_version=MODEL_VERSION, show_collab_predictions=True)
    return ids
