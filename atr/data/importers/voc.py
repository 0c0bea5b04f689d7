"""Pascal VOC XML: `Annotations/*.xml` naming images in `JPEGImages/`.

Each `<object>` gives `<name>` and `<bndbox>` (xmin ymin xmax ymax, pixels).
If `ImageSets/Main/<split>.txt` lists exist (and `split_from_imagesets`), they
give the split. `image_ext` (".jpg") names the image files of a source re-encoded after it
was annotated: HUMS ThreatsRGB's XML name `image_0_1000.png`, the folder holds `.jpg`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from atr.data.importers.base import DatasetImportError, ImporterSettings, Parsed, Record


def read_records(s: ImporterSettings) -> Parsed:
    if not s.source.is_dir():
        raise DatasetImportError(f"{s.source}: not a folder (importer=voc)")
    ann_dir = s.path_option("annotations_dir", s.source / "Annotations")
    images_dir = s.path_option("images_dir", s.source / "JPEGImages")
    if not ann_dir.is_dir():
        raise DatasetImportError(f"{ann_dir}: Annotations folder not found (importer=voc)")
    splits = (
        _imageset_splits(s.source / "ImageSets" / "Main")
        if s.options.get("split_from_imagesets", True)
        else {}
    )
    ext = s.options.get("image_ext")
    if ext is not None and not str(ext).startswith("."):
        raise DatasetImportError(f"importer.image_ext={ext!r}: an extension with its dot, '.jpg'")
    records = [_read_xml(p, splits, ext) for p in sorted(ann_dir.glob("*.xml"))]
    return Parsed(images_dir, records)


def _imageset_splits(folder: Path) -> dict[str, str]:
    """stem -> split, from ImageSets/Main/{train,val,test,...}.txt (not per-class lists)."""
    out: dict[str, str] = {}
    if not folder.is_dir():
        return out
    for f in sorted(folder.glob("*.txt")):
        if "_" in f.stem:  # knife_train.txt: per-class lists, not splits
            continue
        for line in f.read_text(encoding="utf-8").split():
            out.setdefault(line.strip(), f.stem)
    return out


def _read_xml(path: Path, splits: dict[str, str], image_ext: str | None = None) -> Record:
    name = path.name
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DatasetImportError(f"{name}: not valid XML ({e})") from None
    filename = (root.findtext("filename") or "").strip()
    if not filename:
        raise DatasetImportError(f"{name}: no <filename>")
    if image_ext is not None:
        filename = str(Path(filename).with_suffix(image_ext))
    rec = Record(
        image=filename, ref=name, split=splits.get(Path(filename).stem, splits.get(path.stem))
    )
    for k, obj in enumerate(root.findall("object"), start=1):
        ref = f"{name} object #{k}"
        label = (obj.findtext("name") or "").strip()
        if not label:
            raise DatasetImportError(f"{ref}: no <name>")
        box = obj.find("bndbox")
        if box is None:
            rec.classes.append(label)
            continue
        try:
            x0, y0, x1, y1 = (
                float(box.findtext(t) or "") for t in ("xmin", "ymin", "xmax", "ymax")
            )
        except ValueError:
            raise DatasetImportError(f"{ref}: <bndbox> needs numeric xmin ymin xmax ymax") from None
        rec.boxes.append((label, x0, y0, x1, y1))
    if splits and rec.split is None:
        raise DatasetImportError(f"{name}: image {filename!r} is in no ImageSets/Main list")
    return rec
