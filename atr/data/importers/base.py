"""What every importer shares: settings, class mapping, safe paths, and the write.

A format module only parses its annotation files into `Record`s; this module
checks each record (path inside the source, image decodes, classes known,
boxes sane), assigns splits and writes through DatasetWriter, which makes the
whole import all-or-nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from atr.data.dataset_writer import DatasetWriter
from atr.data.manifest import SPLITS
from atr.data.splits import DEFAULT_FRACTIONS, assign_splits, check_fractions, with_strata
from atr.inference.preprocess import ImageDecodeError, decode_image
from atr.taxonomy import Taxonomy

log = logging.getLogger(__name__)
# Source split names seen in the wild -> ATR's.
DEFAULT_SPLIT_MAP = {s: s for s in SPLITS} | {
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "trainval": "train",
    "calibration": "calib",
}


class DatasetImportError(ValueError):
    """A source dataset cannot be imported; the message names the file and line/annotation."""


@dataclass
class Record:
    """One image as a source describes it, before any checking."""

    image: str  # as written in the source: relative to the images root, or absolute
    ref: str  # where it was described, for messages: "labels.csv line 4"
    classes: list[str] = field(default_factory=list)  # image-level source class names
    boxes: list[tuple[str, float, float, float, float]] = field(default_factory=list)  # xyxy
    box_units: str = "px"  # "px", or "fraction" of the image width/height (YOLO, Label Studio)
    split: str | None = None  # the source's split name, if it gives one


@dataclass
class Parsed:
    """What a format module reads from a source."""

    images_root: Path  # image paths in records are taken from here and may not leave it
    records: list[Record]
    # Classes the source declares (CSV header, COCO categories, YOLO names) with where:
    # checked up front, so an unmapped class is refused even if no image uses it.
    declared: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ImporterSettings:
    format: str
    name: str
    source: Path
    out: Path
    class_map: dict[str, str | None]
    unknown_class: str  # "error" | "ignore"
    scanner_id: str
    complete_labels: bool
    splits: dict[str, float]
    seed: int
    split_map: dict[str, str]
    overwrite: bool
    options: dict[str, Any]  # the whole importer section, for format-specific keys

    @classmethod
    def from_config(cls, icfg: Mapping[str, Any], data_dir: str | Path | None) -> ImporterSettings:
        fmt, name = str(icfg.get("format") or ""), str(icfg.get("name") or icfg.get("format"))
        if not icfg.get("source"):
            raise DatasetImportError(
                f"importer.source is not set (the {fmt or '?'} dataset to import)"
            )
        out = icfg.get("out") or Path(data_dir or "data") / "imports" / name
        unknown = str(icfg.get("unknown_class") or "error")
        if unknown not in ("error", "ignore"):
            raise DatasetImportError(f"importer.unknown_class {unknown!r} not 'error' or 'ignore'")
        try:
            fractions = check_fractions(icfg.get("splits") or DEFAULT_FRACTIONS)
        except ValueError as e:
            raise DatasetImportError(f"importer.splits: {e}") from None
        split_map = DEFAULT_SPLIT_MAP | {
            str(k): str(v) for k, v in (icfg.get("split_map") or {}).items()
        }
        bad = {k: v for k, v in split_map.items() if v not in SPLITS}
        if bad:
            raise DatasetImportError(f"importer.split_map: targets {bad} not in {SPLITS}")
        return cls(
            format=fmt,
            name=name,
            source=Path(str(icfg["source"])).expanduser(),
            out=Path(str(out)).expanduser(),
            class_map={
                str(k): (None if v is None else str(v))
                for k, v in (icfg.get("class_map") or {}).items()
            },
            unknown_class=unknown,
            scanner_id=str(icfg.get("scanner_id") or "unknown"),
            complete_labels=bool(icfg.get("complete_labels", False)),
            splits=fractions,
            seed=int(icfg.get("seed", 0)),
            split_map=split_map,
            overwrite=bool(icfg.get("overwrite", False)),
            options=dict(icfg),
        )

    def path_option(self, key: str, default: Path) -> Path:
        """A format-specific folder/file option; relative paths start at the source's folder."""
        value = self.options.get(key)
        if not value:
            return default
        p = Path(str(value)).expanduser()
        base = self.source if self.source.is_dir() else self.source.parent
        return p if p.is_absolute() else base / p


class ClassMapper:
    """Source class name -> ATR class name (or None: ignored)."""

    def __init__(self, class_map: Mapping[str, str | None], taxonomy: Taxonomy, unknown: str):
        bad = {k: v for k, v in class_map.items() if v is not None and v not in taxonomy.names}
        if bad:
            raise DatasetImportError(
                f"importer.class_map: target(s) {bad} are not ATR classes "
                f"({', '.join(taxonomy.names)})"
            )
        self.class_map, self.names, self.unknown = dict(class_map), set(taxonomy.names), unknown

    def __call__(self, source_class: str, ref: str) -> str | None:
        if source_class in self.class_map:
            return self.class_map[source_class]
        if source_class in self.names:
            return source_class
        if self.unknown == "ignore":
            return None
        raise DatasetImportError(
            f"{ref}: class {source_class!r} is neither in importer.class_map nor an ATR class; "
            "map it (to an ATR class, or null to ignore) or set importer.unknown_class=ignore"
        )


def resolve_inside(root: Path, name: str, ref: str) -> Path:
    """The file `name` names, refusing anything that leaves `root` ('..', absolute, symlink)."""
    root_r = root.resolve()
    p = Path(name)
    resolved = (p if p.is_absolute() else root / p).resolve()
    if not resolved.is_relative_to(root_r):
        raise DatasetImportError(f"{ref}: image path {name!r} leaves the source folder {root}")
    if not resolved.is_file():
        raise DatasetImportError(f"{ref}: image {name!r} not found under {root}")
    return resolved


def _pixel_boxes(rec: Record, mapper: ClassMapper, width: int, height: int) -> list[dict[str, Any]]:
    sx, sy = (width, height) if rec.box_units == "fraction" else (1.0, 1.0)
    out = []
    for k, (label, x0, y0, x1, y1) in enumerate(rec.boxes):
        cls = mapper(label, f"{rec.ref} box #{k}")
        if cls is None:
            continue
        if x1 < x0 or y1 < y0:
            raise DatasetImportError(f"{rec.ref} box #{k}: corners out of order {[x0, y0, x1, y1]}")
        # Annotation tools overshoot the border by a pixel or two: clip, don't refuse.
        xyxy = [
            round(min(max(v * s, 0.0), lim), 2)
            for v, s, lim in ((x0, sx, width), (y0, sy, height), (x1, sx, width), (y1, sy, height))
        ]
        out.append({"label": cls, "xyxy": xyxy})
    return out


def write_import(parsed: Parsed, s: ImporterSettings, taxonomy: Taxonomy) -> Path:
    """Check every record, then write the dataset (all-or-nothing). Returns the dataset folder."""
    mapper = ClassMapper(s.class_map, taxonomy, s.unknown_class)
    for name, ref in parsed.declared:
        mapper(name, ref)
    images_root = parsed.images_root
    items: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for rec in parsed.records:
        path = resolve_inside(images_root, rec.image, rec.ref)
        rel = path.relative_to(images_root.resolve()).as_posix()
        if rel in seen:
            raise DatasetImportError(f"{rec.ref}: image {rel!r} already described at {seen[rel]}")
        seen[rel] = rec.ref
        try:
            height, width = decode_image(path).shape[:2]  # every image must decode, now
        except ImageDecodeError as e:
            raise DatasetImportError(f"{rec.ref}: image {rel!r}: {e}") from None
        boxes = _pixel_boxes(rec, mapper, width, height)
        mapped = {mapper(c, rec.ref) for c in rec.classes} | {b["label"] for b in boxes}
        labels = {c: 1 for c in mapped if c is not None}
        split = None
        if rec.split is not None:
            split = s.split_map.get(rec.split)
            if split is None:
                raise DatasetImportError(
                    f"{rec.ref}: split {rec.split!r} unknown; map it with importer.split_map"
                )
        items.append(
            {
                "item_id": f"{s.name}/{rel}",
                "path": path,
                "rel": rel,
                "ref": rec.ref,
                "labels": labels,
                "boxes": boxes,
                "width": width,
                "height": height,
                "split": split,
                "source_classes": sorted(set(rec.classes) | {b[0] for b in rec.boxes}),
            }
        )
    if not items:
        raise DatasetImportError(f"{s.source}: no images found to import")
    _fill_splits(items, s, taxonomy)
    return _write(items, s, taxonomy)


def _fill_splits(items: list[dict[str, Any]], s: ImporterSettings, taxonomy: Taxonomy) -> None:
    given = [it["split"] is not None for it in items]
    if all(given):
        return
    if any(given):
        first = next(it for it in items if it["split"] is None)
        raise DatasetImportError(f"{first['ref']}: no split, while other images have one")
    df = pd.DataFrame(
        {
            "item_id": [it["item_id"] for it in items],
            **{c: [it["labels"].get(c, 0) for it in items] for c in taxonomy.names},
        }
    )
    df["paper_only"] = [_paper_only(it["labels"], s, taxonomy) for it in items]
    splits = assign_splits(with_strata(df, taxonomy), s.splits, s.seed)
    for it, split in zip(items, splits, strict=True):
        it["split"] = split


def _paper_only(labels: dict[str, int], s: ImporterSettings, taxonomy: Taxonomy) -> int:
    # Partly labelled sources never claim paper-only: an unlabelled knife may be there.
    return taxonomy.paper_only(labels) if s.complete_labels else 0


def _write(items: list[dict[str, Any]], s: ImporterSettings, taxonomy: Taxonomy) -> Path:
    with DatasetWriter(s.out, taxonomy, source=f"{s.format}:{s.name}", overwrite=s.overwrite) as w:
        for it in items:
            w.add(
                it["item_id"],
                it["path"].read_bytes(),
                ext=it["path"].suffix or ".img",
                split=it["split"],
                scanner_id=s.scanner_id,
                labels=it["labels"],
                paper_only=_paper_only(it["labels"], s, taxonomy),
                boxes=it["boxes"],
                width=it["width"],
                height=it["height"],
                meta={
                    "importer": s.format,
                    "original_name": it["rel"],
                    "original_path": str(it["path"]),
                    "annotation": it["ref"],
                    "source_classes": it["source_classes"],
                },
            )
    log.info("imported %d images from %s into %s", len(items), s.source, s.out)
    return s.out
