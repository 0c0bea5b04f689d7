"""YOLO txt: `images/**/x.png` with `labels/**/x.txt` beside it (same relative path).

Each label line is `class_index cx cy w h`, normalised to the image size.
Class names come from `importer.names` or `classes.txt` (one per line) in the
source. A missing label file means no objects (YOLO's convention for
negatives). With `split_dirs: true`, `images/<split>/...` gives the split.
"""

from __future__ import annotations

from pathlib import Path

from atr.data.importers.base import DatasetImportError, ImporterSettings, Parsed, Record
from atr.data.importers.folder import IMAGE_EXTENSIONS


def _class_names(s: ImporterSettings) -> tuple[list[str], str]:
    names = s.options.get("names")
    if names:
        return [str(n) for n in names], "importer.names"
    for candidate in (s.source / "classes.txt", s.source / "labels" / "classes.txt"):
        if candidate.is_file():
            lines = candidate.read_text(encoding="utf-8").splitlines()
            return [ln.strip() for ln in lines if ln.strip()], candidate.name
    raise DatasetImportError(
        f"{s.source}: no classes.txt and no importer.names: YOLO class indices need names"
    )


def read_records(s: ImporterSettings) -> Parsed:
    if not s.source.is_dir():
        raise DatasetImportError(f"{s.source}: not a folder (importer=yolo)")
    names, names_ref = _class_names(s)
    images_dir = s.path_option("images_dir", s.source / "images")
    labels_dir = s.path_option("labels_dir", s.source / "labels")
    if not images_dir.is_dir():
        raise DatasetImportError(f"{images_dir}: images folder not found (importer=yolo)")
    split_dirs = bool(s.options.get("split_dirs", True))
    records = []
    for img in sorted(
        p for p in images_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    ):
        rel = img.relative_to(images_dir)
        split = rel.parts[0] if split_dirs and len(rel.parts) > 1 else None
        label_file = (labels_dir / rel).with_suffix(".txt")
        rec = Record(
            image=rel.as_posix(), ref=f"{rel.as_posix()}", box_units="fraction", split=split
        )
        if label_file.is_file():
            rec.boxes = _read_label_file(label_file, labels_dir, names)
            rec.ref = f"{label_file.relative_to(labels_dir).as_posix()}"
        records.append(rec)
    declared = [(n, f"{names_ref} entry {i}") for i, n in enumerate(names)]
    return Parsed(images_dir, records, declared)


def _read_label_file(path: Path, labels_dir: Path, names: list[str]) -> list[tuple]:
    boxes = []
    rel = path.relative_to(labels_dir).as_posix()
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        ref = f"{rel} line {line_no}"
        parts = line.split()
        try:
            idx, cx, cy, w, h = int(parts[0]), *(float(v) for v in parts[1:5])
        except (ValueError, IndexError):
            raise DatasetImportError(f"{ref}: expected 'class cx cy w h', got {line!r}") from None
        if len(parts) != 5:  # segmentation polygons are not boxes: refuse, don't misread
            raise DatasetImportError(f"{ref}: expected 5 values, got {len(parts)}")
        if not 0 <= idx < len(names):
            raise DatasetImportError(f"{ref}: class index {idx} outside 0..{len(names) - 1}")
        if w < 0 or h < 0 or not all(-0.01 <= v <= 1.01 for v in (cx, cy, w, h)):
            raise DatasetImportError(f"{ref}: box {cx, cy, w, h} is not normalised to 0..1")
        boxes.append((names[idx], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return boxes
