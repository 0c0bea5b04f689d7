"""Class-per-folder datasets: `source/<class>/*.png` (or `source/<split>/<class>/*`).

Each image gets the one class its folder names (mapped through class_map).
"""

from __future__ import annotations

from pathlib import Path

from atr.data.importers.base import DatasetImportError, ImporterSettings, Parsed, Record

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")


def list_images(folder: Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files directly in `folder`, sorted (a stable order = a reproducible import)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions)


def read_records(s: ImporterSettings) -> Parsed:
    root = s.source
    if not root.is_dir():
        raise DatasetImportError(
            f"{root}: not a folder (importer=folder expects <source>/<class>/)"
        )
    exts = tuple(str(e).lower() for e in s.options.get("extensions") or IMAGE_EXTENSIONS)
    records: list[Record] = []
    if s.options.get("split_dirs"):
        for split_dir in sorted(d for d in root.iterdir() if d.is_dir()):
            records += _class_folders(root, split_dir, exts, split_dir.name)
    else:
        records = _class_folders(root, root, exts, None)
    return Parsed(root, records)


def _class_folders(
    root: Path, parent: Path, exts: tuple[str, ...], split: str | None
) -> list[Record]:
    records = []
    for class_dir in sorted(
        d for d in parent.iterdir() if d.is_dir() and not d.name.startswith(".")
    ):
        for img in list_images(class_dir, exts):
            rel = img.relative_to(root).as_posix()
            records.append(
                Record(
                    image=rel,
                    ref=f"{rel} (folder {class_dir.name!r})",
                    classes=[class_dir.name],
                    split=split,
                )
            )
    return records
