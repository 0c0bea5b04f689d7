"""COCO JSON (PIDray, CLCXray): `images`, `annotations` (bbox x,y,w,h), `categories`.

Image-level labels are the union of an image's box classes; an image with no
annotation is a negative. `split_field` names an optional key of each image
entry that carries the source split.
"""

from __future__ import annotations

import json
from typing import Any

from atr.data.importers.base import DatasetImportError, ImporterSettings, Parsed, Record


def _load(path: Any) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetImportError(f"{path}: COCO annotation file not found") from None
    except ValueError as e:
        raise DatasetImportError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetImportError(f"{path}: not a COCO file (no 'images' list)")
    return data


def read_records(s: ImporterSettings) -> Parsed:
    path = s.source
    data = _load(path)
    name = path.name
    images_root = s.path_option("images_dir", path.parent)
    split_field = s.options.get("split_field")
    categories: dict[Any, str] = {}
    for k, c in enumerate(data.get("categories") or []):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise DatasetImportError(f"{name}: categories[{k}]: needs 'id' and 'name'")
        categories[c["id"]] = str(c["name"])
    records: dict[Any, Record] = {}
    for k, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im or not im.get("file_name"):
            raise DatasetImportError(f"{name}: images[{k}]: needs 'id' and 'file_name'")
        if im["id"] in records:
            raise DatasetImportError(f"{name}: images[{k}]: duplicate image id {im['id']!r}")
        split = im.get(split_field) if split_field else None
        records[im["id"]] = Record(
            image=str(im["file_name"]),
            ref=f"{name} image id {im['id']}",
            split=None if split is None else str(split),
        )
    for k, ann in enumerate(data.get("annotations") or []):
        ref = f"{name} annotation id {ann.get('id', f'#{k}')}" if isinstance(ann, dict) else name
        if not isinstance(ann, dict):
            raise DatasetImportError(f"{ref} (annotations[{k}]): not an object")
        rec = records.get(ann.get("image_id"))
        if rec is None:
            raise DatasetImportError(f"{ref}: image_id {ann.get('image_id')!r} not in images")
        if ann.get("category_id") not in categories:
            raise DatasetImportError(
                f"{ref}: category_id {ann.get('category_id')!r} not in categories"
            )
        label = categories[ann["category_id"]]
        bbox = ann.get("bbox")
        if bbox is None:  # image-level tag without a box
            rec.classes.append(label)
            continue
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, int | float) for v in bbox)
            or bbox[2] < 0
            or bbox[3] < 0
        ):
            raise DatasetImportError(f"{ref}: bbox {bbox!r} is not [x, y, width>=0, height>=0]")
        x, y, w, h = (float(v) for v in bbox)
        rec.boxes.append((label, x, y, x + w, y + h))
    declared = [(n, f"{name} category id {cid}") for cid, n in categories.items()]
    return Parsed(images_root, list(records.values()), declared)
