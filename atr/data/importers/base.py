"""What every importer shares: class mapping, safe paths, truth columns, and the write.

(The `importer` settings are checked in settings.py.)

A format module only parses its annotation files into `Record`s; this module
checks each record (path inside the source, image decodes, classes known,
boxes sane), assigns splits and writes through DatasetWriter, which makes the
whole import all-or-nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atr.data.dataset_writer import DatasetWriter
from atr.data.importers.progress import progress

# Re-exported: format modules import these from here.
from atr.data.importers.settings import DEFAULT_SPLIT_MAP, DatasetImportError, ImporterSettings
from atr.data.label_completeness import META_KEY
from atr.data.near_duplicates import HashSettings, group_near_duplicates
from atr.data.splits import assign_splits, straddling_groups, with_strata
from atr.package.preprocess import ImageDecodeError, decode_image
from atr.policy.taxonomy import Taxonomy

__all__ = ["DEFAULT_SPLIT_MAP", "DatasetImportError", "ImporterSettings", "Parsed", "Record"]
log = logging.getLogger(__name__)


@dataclass
class Record:
    """One image as a source describes it, before any checking."""

    image: str  # as written in the source: relative to the images root, or absolute
    ref: str  # where it was described, for messages: "labels.csv line 4"
    classes: list[str] = field(default_factory=list)  # image-level source class names
    boxes: list[tuple[str, float, float, float, float]] = field(default_factory=list)  # xyxy
    box_units: str = "px"  # "px", or "fraction" of the image width/height (YOLO, Label Studio)
    split: str | None = None  # the source's split name, if it gives one
    key: str | None = None  # the item id's tail when not the image path (a scan's stem)
    meta: dict[str, Any] = field(default_factory=dict)  # format-specific provenance
    # The dual-energy pair, uint16 2HxW (low on top), read only when written.
    raw: Callable[[], np.ndarray] | None = None


@dataclass
class Parsed:
    """What a format module reads from a source."""

    images_root: Path  # image paths in records are taken from here and may not leave it
    records: list[Record]
    # Classes the source declares (CSV header, COCO categories, YOLO names) with where:
    # checked up front, so an unmapped class is refused even if no image uses it.
    declared: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files seen but not imported (why)


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
    try:
        s.complete_labels.check(taxonomy)
    except ValueError as e:
        raise DatasetImportError(str(e)) from None
    for name, ref in parsed.declared:
        mapper(name, ref)
    images_root = parsed.images_root
    items: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    records = progress(parsed.records, total=len(parsed.records), desc=f"checking {s.name}",
                       wanted=s.progress)
    for rec in records:
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
                "item_id": f"{s.name}/{rec.key or rel}",
                "path": path,
                "rel": rel,
                "ref": rec.ref,
                "labels": labels,
                "boxes": boxes,
                "width": width,
                "height": height,
                "split": split,
                "source_classes": sorted(set(rec.classes) | {b[0] for b in rec.boxes}),
                "paper_only": _paper_only(labels, s, taxonomy),
                "no_threat": _no_threat(labels, s, taxonomy),
                "raw": rec.raw,
                "meta": rec.meta,
            }
        )
    if not items:
        raise DatasetImportError(f"{s.source}: no images found to import")
    near_duplicates = _fill_splits(items, s, taxonomy)
    return _write(items, s, taxonomy, parsed.ignored, near_duplicates)


def _fill_splits(
    items: list[dict[str, Any]], s: ImporterSettings, taxonomy: Taxonomy
) -> dict[str, Any]:
    """Give every item a split; returns the near-duplicate summary for dataset.json.

    A source's own splits are kept (published results refer to them); near-duplicate
    groups that straddle them are only reported. Otherwise the split is by scene:
    near-duplicates (atr/data/near_duplicates.py) share one split.
    """
    given = [it["split"] is not None for it in items]
    if any(given) and not all(given):
        first = next(it for it in items if it["split"] is None)
        raise DatasetImportError(f"{first['ref']}: no split, while other images have one")
    cfg = s.options.get("near_duplicates") or {}
    enabled = bool(cfg.get("enabled", True))
    try:
        hs = HashSettings.from_config(cfg)
    except ValueError as e:
        raise DatasetImportError(f"importer.{e}") from None
    scenes, summary = None, {"enabled": enabled}
    if enabled:
        found = group_near_duplicates([it["path"] for it in items], settings=hs,
                                      progress=s.progress)
        scenes, summary = found.keys(it["item_id"] for it in items), found.summary()
        log.info("%d near-duplicate groups found (%d items) in %s",
                 found.groups, found.items_in_groups, s.source)
    if all(given):
        if scenes is not None:
            straddle = straddling_groups(scenes, [it["split"] for it in items])
            summary["straddling_source_splits"] = len(straddle)
            if straddle:
                log.warning("%s: %d near-duplicate group(s) straddle the source's own splits "
                            "(kept as given), e.g. the group of %s", s.source, len(straddle),
                            ", ".join(straddle[:3]))
        return summary
    df = pd.DataFrame(
        {
            "item_id": [it["item_id"] for it in items],
            **{c: [it["labels"].get(c, 0) for it in items] for c in taxonomy.names},
        }
    )
    df["paper_only"] = [_paper_only(it["labels"], s, taxonomy) for it in items]
    if scenes is not None:
        df["scene"] = scenes
    splits = assign_splits(with_strata(df, taxonomy), s.splits, s.seed,
                           groups=None if scenes is None else "scene")
    for it, split in zip(items, splits, strict=True):
        it["split"] = split
    return summary


def _paper_only(labels: dict[str, int], s: ImporterSettings, taxonomy: Taxonomy) -> int:
    # Partly labelled sources never claim paper-only: an unlabelled knife may be there.
    return s.complete_labels.paper_only(labels, taxonomy)


def _no_threat(labels: dict[str, int], s: ImporterSettings, taxonomy: Taxonomy) -> int:
    # Only sources whose every threat class is complete may say "no threat here".
    return s.complete_labels.no_threat(labels, taxonomy)


def _write(
    items: list[dict[str, Any]], s: ImporterSettings, taxonomy: Taxonomy, ignored: list[str],
    near_duplicates: dict[str, Any] | None = None,
) -> Path:
    info = {
        "importer": {"format": s.format, "source": str(s.source), "scanner_id": s.scanner_id},
        "complete_labels": s.complete_labels.describe(taxonomy),
        "class_map": s.class_map,
        "ignored_files": ignored,
        "near_duplicates": near_duplicates,
    }
    with DatasetWriter(
        s.out, taxonomy, source=f"{s.format}:{s.name}", overwrite=s.overwrite, info=info
    ) as w:
        for it in progress(items, total=len(items), desc=f"writing {s.name}", wanted=s.progress):
            w.add(
                it["item_id"],
                it["path"].read_bytes(),
                ext=it["path"].suffix or ".img",
                raw=None if it["raw"] is None else it["raw"](),
                split=it["split"],
                scanner_id=s.scanner_id,
                labels=it["labels"],
                paper_only=it["paper_only"],
                no_threat=it["no_threat"],
                boxes=it["boxes"],
                width=it["width"],
                height=it["height"],
                meta={
                    "importer": s.format,
                    "original_name": it["rel"],
                    "original_path": str(it["path"]),
                    "annotation": it["ref"],
                    "source_classes": it["source_classes"],
                    META_KEY: s.complete_labels.to_json(),
                    **it["meta"],
                },
            )
    if ignored:
        log.warning("%s: %d file(s) not imported: %s", s.source, len(ignored), "; ".join(ignored))
    log.info("imported %d images from %s into %s", len(items), s.source, s.out)
    return s.out
