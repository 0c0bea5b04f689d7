"""Label Studio JSON export: a list of tasks with `data` and `annotations`.

Image-level classes come from `choices` results, boxes from `rectanglelabels`
(x, y, width, height in percent of the image, rotated about the top-left
corner by `rotation` degrees). Several annotations of a task are united: any
annotator's threat counts (fail-safe). Cancelled annotations are ignored;
tasks without annotations are skipped (unlabelled, not negative).

The image reference (`data.<data_key>`) is mapped to a file under
`importer.images_dir`: `/data/upload/<project>/<hash>-<name>` (uploads),
`/data/local-files/?d=<path>` (local storage) or a plain relative path.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from atr.data.importers.base import DatasetImportError, ImporterSettings, Parsed, Record

log = logging.getLogger(__name__)
_UPLOAD_HASH = re.compile(r"^[0-9a-f]{8}-")


def read_records(s: ImporterSettings) -> Parsed:
    path = s.source
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetImportError(f"{path}: Label Studio export not found") from None
    except ValueError as e:
        raise DatasetImportError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(tasks, list):
        raise DatasetImportError(
            f"{path}: expected a JSON list of tasks (Label Studio JSON export)"
        )
    images_dir = s.path_option("images_dir", path.parent)
    key = str(s.options.get("data_key") or "image")
    split_field = s.options.get("split_field")
    records, skipped = [], 0
    for k, task in enumerate(tasks):
        tid = task.get("id", f"#{k}") if isinstance(task, dict) else f"#{k}"
        ref = f"{path.name} task id {tid}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise DatasetImportError(f"{ref}: task without a 'data' object")
        if key not in task["data"]:
            raise DatasetImportError(f"{ref}: no data.{key} (set importer.data_key)")
        annotations = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        if not annotations:
            skipped += 1
            continue
        split = task["data"].get(split_field) if split_field else None
        rec = Record(
            image=_local_image(str(task["data"][key]), images_dir, ref),
            ref=ref,
            box_units="fraction",
            split=None if split is None else str(split),
        )
        for ann in annotations:
            for r, result in enumerate(ann.get("result") or []):
                add_result(rec, result, f"{ref} annotation id {ann.get('id', '?')} result #{r}")
        records.append(rec)
    if skipped:
        log.warning("%s: skipped %d task(s) without annotations", path, skipped)
    return Parsed(images_dir, records)


def _local_image(ref_path: str, images_dir: Path, ref: str) -> str:
    """Label Studio's URL for an image -> a path relative to images_dir (first that exists)."""
    url = urlparse(ref_path)
    if url.scheme in ("http", "https", "s3", "gs"):
        raise DatasetImportError(
            f"{ref}: image {ref_path!r} is remote; download it into "
            "importer.images_dir and export with local paths"
        )
    if url.path.startswith("/data/local-files"):
        d = parse_qs(url.query).get("d", [""])[0]
        return d
    path = unquote(url.path)
    if path.startswith("/data/upload/"):
        rel = path[len("/data/upload/") :]
        name = Path(rel).name
        candidates = [rel, name, _UPLOAD_HASH.sub("", name)]
        return next((c for c in candidates if (images_dir / c).is_file()), rel)
    return path


def add_result(rec: Record, result: dict[str, Any], ref: str) -> None:
    kind, value = result.get("type"), result.get("value") or {}
    if kind == "choices":
        rec.classes.extend(str(c) for c in value.get("choices") or [])
    elif kind == "rectanglelabels":
        labels = value.get("rectanglelabels") or []
        try:
            x, y, w, h = (float(value[k]) / 100.0 for k in ("x", "y", "width", "height"))
        except (KeyError, TypeError, ValueError):
            raise DatasetImportError(
                f"{ref}: rectangle needs numeric x, y, width, height"
            ) from None
        if w < 0 or h < 0:
            raise DatasetImportError(f"{ref}: negative rectangle size {w * 100}x{h * 100}%")
        box = _rotated_extent(x, y, w, h, float(value.get("rotation") or 0.0), result, ref)
        rec.boxes.extend((str(label), *box) for label in labels)


def _rotated_extent(
    x: float, y: float, w: float, h: float, angle: float, result: dict[str, Any], ref: str
) -> tuple[float, float, float, float]:
    """Axis-aligned extent (fractions) of a rectangle rotated about its top-left corner."""
    if angle % 360 == 0:
        return x, y, x + w, y + h
    ow, oh = result.get("original_width"), result.get("original_height")
    if not ow or not oh:
        raise DatasetImportError(f"{ref}: rotated rectangle without original_width/height")
    # Rotate in pixels: percent units differ along x and y unless the image is square.
    a = math.radians(angle)
    corners = [(dx * w * ow, dy * h * oh) for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1))]
    xs = [x * ow + cx * math.cos(a) - cy * math.sin(a) for cx, cy in corners]
    ys = [y * oh + cx * math.sin(a) + cy * math.cos(a) for cx, cy in corners]
    return min(xs) / ow, min(ys) / oh, max(xs) / ow, max(ys) / oh
