"""SIXray-style CSV: a `name` column and one 0/1 column per class.

SIXray itself writes 1 for present and 0 or -1 for absent; both are accepted.
Names may omit the extension (SIXray's do): the first existing file among
`extensions` is used.
"""

from __future__ import annotations

import csv
from pathlib import Path

from atr.data.importers.base import DatasetImportError, ImporterSettings, Parsed, Record

EXTENSIONS = (".jpg", ".png", ".jpeg", ".tif", ".tiff", ".bmp")
POSITIVE, NEGATIVE = {"1", "1.0"}, {"0", "-1", "0.0", "-1.0", ""}


def read_records(s: ImporterSettings) -> Parsed:
    csv_path = s.source
    if not csv_path.is_file():
        raise DatasetImportError(f"{csv_path}: CSV file not found (importer=sixray)")
    images = s.path_option("images_dir", csv_path.parent)
    name_col = str(s.options.get("name_column") or "name")
    split_col = s.options.get("split_column")
    exts = tuple(s.options.get("extensions") or EXTENSIONS)
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter=str(s.options.get("delimiter") or ","))
        header = reader.fieldnames or []
        if name_col not in header:
            raise DatasetImportError(f"{csv_path} line 1: no {name_col!r} column in {header}")
        if split_col and split_col not in header:
            raise DatasetImportError(
                f"{csv_path} line 1: no split column {split_col!r} in {header}"
            )
        class_cols = [c for c in header if c not in (name_col, split_col)]
        records = []
        for line, row in enumerate(reader, start=2):
            ref = f"{csv_path.name} line {line}"
            name = (row[name_col] or "").strip()
            if not name:
                raise DatasetImportError(f"{ref}: empty {name_col!r}")
            present = []
            for c in class_cols:
                value = (row.get(c) or "").strip()
                if value in POSITIVE:
                    present.append(c)
                elif value not in NEGATIVE:
                    raise DatasetImportError(f"{ref}: column {c!r}: {value!r} is not 0/1 (or -1)")
            records.append(
                Record(
                    image=_with_extension(images, name, exts),
                    ref=ref,
                    classes=present,
                    split=(row[split_col] or None) if split_col else None,
                )
            )
    declared = [(c, f"{csv_path.name} line 1 (column {c!r})") for c in class_cols]
    return Parsed(images, records, declared)


def _with_extension(images: Path, name: str, exts: tuple[str, ...]) -> str:
    if Path(name).suffix.lower() in exts or (images / name).is_file():
        return name
    for ext in exts:
        if (images / f"{name}{ext}").is_file():
            return f"{name}{ext}"
    return name  # not found: resolve_inside reports it with the line
