"""Simulated datasets exported in the formats real archives come in (CI has no real data).

    src, overrides = export_dataset(dataset_dir, "voc", tmp_path / "voc")
    out = import_dataset(compose("import", [*overrides, f"importer.out={tmp_path / 'out'}"]))

`dataset_dir` is a simulator dataset (`atr.data.synth.make_dataset(..., save_raw=True)`;
raw is needed only by the dual-energy formats). `export_dataset` writes it as a source of
`fmt` (one of FORMATS) under `out_dir` and returns the source path and the Hydra overrides
that import it, class map in the README's `importer.class_map='{...}'` form (the
exported class names are the source names of SOURCE_NAMES, never ATR's). The caller adds
`importer.out` (or `paths.data_dir`) and `importer.name`. Each exported file is named by
its simulator item id: `original_id(imported_item_id)` maps an imported row back.

What survives each format is TRAITS[fmt] (the tests check exactly that):
  voc, coco, labelstudio  every class (unboxed paper as image-level tags), boxes, splits,
                          complete_labels=true: paper_only and no_threat
  sixray                  every class (image-level), splits; no boxes; paper_only, no_threat
  yolo                    boxed classes only (paper has no boxes), boxes, splits,
                          complete_labels=threats: no_threat (paper_only = 0)
  folder, dual_energy_*   one class per image (its first threat, else folder `Benign` ->
                          null), splits, complete_labels=threats: no_threat; dual_energy_*
                          also raw (16-bit low/high TIFF or PNG pairs, exact);
                          dual_energy_tiff has an RGBA colour TIFF per scan, _png none.
This API is shared with the end-to-end test (import -> pipeline -> evaluate): keep it.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from atr.data.manifest import Dataset, read_dataset
from atr.policy.taxonomy import Taxonomy

FORMATS = ("voc", "yolo", "coco", "sixray", "folder", "labelstudio",
           "dual_energy_tiff", "dual_energy_png")
BENIGN = "Benign"  # folder of threat-free images in class-folder formats (mapped to null)
_NAMES = {"firearm": "Gun", "knife": "Knife", "ammunition": "Bullet", "narcotics": "Drugs",
          "lithium_battery": "Powerbank", "document": "Letter", "book": "Book"}


def source_name(atr_class: str) -> str:
    return _NAMES.get(atr_class, atr_class.title().replace("_", ""))


@dataclass(frozen=True)
class Traits:
    classes: str  # "all" | "boxed" | "first_threat": which ATR classes the format keeps
    boxes: bool
    paper_only: bool  # paper_only truth survives (else 0 everywhere)
    raw: bool


TRAITS = {
    "voc": Traits("all", True, True, False),
    "coco": Traits("all", True, True, False),
    "labelstudio": Traits("all", True, True, False),
    "sixray": Traits("all", False, True, False),
    "yolo": Traits("boxed", True, False, False),
    "folder": Traits("first_threat", False, False, False),
    "dual_energy_tiff": Traits("first_threat", False, False, True),
    "dual_energy_png": Traits("first_threat", False, False, True),
}  # no_threat survives in every format


def original_id(imported_item_id: str) -> str:
    """The simulator item id an imported row came from (exported files are named by it)."""
    return Path(imported_item_id.rsplit("/", 1)[-1]).stem


def export_dataset(
    dataset_dir: str | Path, fmt: str, out_dir: str | Path
) -> tuple[Path, list[str]]:
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} not one of {FORMATS}")
    ds, out = read_dataset(dataset_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [_Row(ds, r) for r in ds.manifest.to_dict("records")]
    writer = _WRITERS["dual_energy" if fmt.startswith("dual_energy") else fmt]
    source, extra = writer(rows, out, ds.taxonomy, fmt)
    importer = "dual_energy" if fmt.startswith("dual_energy") else fmt
    complete = "true" if TRAITS[fmt].classes == "all" else "threats"
    names = ds.taxonomy.names if TRAITS[fmt].classes != "first_threat" else ds.taxonomy.threats
    entries = [f"{source_name(c)}: {c}" for c in names]
    if TRAITS[fmt].classes == "first_threat":
        entries.append(f"{BENIGN}: null")
    return source, [
        f"importer={importer}",
        f"importer.source={source}",
        "importer.class_map={" + ", ".join(entries) + "}",
        f"importer.complete_labels={complete}",
        *extra,
    ]


class _Row:
    """One simulator row: its image, classes, boxes (ATR names) and split."""

    def __init__(self, ds: Dataset, r: dict[str, Any]):
        self.id, self.split = r["item_id"], r["split"]
        self.image = ds.root / r["image"]
        self.raw = None if r["raw"] is None else ds.root / r["raw"]
        self.width, self.height = int(r["width"]), int(r["height"])
        self.classes = [c for c in ds.taxonomy.names if r[c] == 1]
        self.boxes = json.loads(r["boxes"])
        boxed = {b["label"] for b in self.boxes}
        self.unboxed = [c for c in self.classes if c not in boxed]
        self.first_threat = next((c for c in ds.taxonomy.threats if r[c] == 1), None)

    def folder(self) -> str:
        return BENIGN if self.first_threat is None else source_name(self.first_threat)


def _copy_png(row: _Row, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(row.image.read_bytes())
    return path.name


def _voc(rows: list[_Row], out: Path, tax: Taxonomy, fmt: str) -> tuple[Path, list[str]]:
    (out / "Annotations").mkdir(exist_ok=True)
    (out / "JPEGImages").mkdir(exist_ok=True)
    lists: dict[str, list[str]] = {}
    for row in rows:
        Image.open(row.image).convert("RGB").save(out / "JPEGImages" / f"{row.id}.jpg",
                                                  quality=95)
        ann = ET.Element("annotation")
        ET.SubElement(ann, "filename").text = f"{row.id}.jpg"
        size = ET.SubElement(ann, "size")
        for tag, v in (("width", row.width), ("height", row.height), ("depth", 3)):
            ET.SubElement(size, tag).text = str(v)
        for b in row.boxes:
            obj = ET.SubElement(ann, "object")
            ET.SubElement(obj, "name").text = source_name(b["label"])
            box = ET.SubElement(obj, "bndbox")
            for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), b["xyxy"], strict=True):
                ET.SubElement(box, tag).text = str(v)
        for c in row.unboxed:  # an object without a box: an image-level class
            ET.SubElement(ET.SubElement(ann, "object"), "name").text = source_name(c)
        ET.ElementTree(ann).write(out / "Annotations" / f"{row.id}.xml")
        lists.setdefault(row.split, []).append(row.id)
    (out / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for split, ids in lists.items():
        (out / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return out, []


def _yolo(rows: list[_Row], out: Path, tax: Taxonomy, fmt: str) -> tuple[Path, list[str]]:
    names = tax.names
    (out / "classes.txt").write_text("".join(f"{source_name(n)}\n" for n in names))
    for row in rows:
        _copy_png(row, out / "images" / row.split / f"{row.id}.png")
        if not row.boxes:
            continue  # YOLO's convention: no label file = no objects
        lines = []
        for b in row.boxes:
            x0, y0, x1, y1 = b["xyxy"]
            cx, cy = (x0 + x1) / 2 / row.width, (y0 + y1) / 2 / row.height
            w, h = (x1 - x0) / row.width, (y1 - y0) / row.height
            lines.append(f"{names.index(b['label'])} {cx:.7f} {cy:.7f} {w:.7f} {h:.7f}")
        label = out / "labels" / row.split / f"{row.id}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("\n".join(lines) + "\n")
    return out, []


def _coco(rows: list[_Row], out: Path, tax: Taxonomy, fmt: str) -> tuple[Path, list[str]]:
    cat = {c: k + 1 for k, c in enumerate(tax.names)}
    images, anns = [], []
    for k, row in enumerate(rows, start=1):
        _copy_png(row, out / "images" / f"{row.id}.png")
        images.append({"id": k, "file_name": f"images/{row.id}.png", "width": row.width,
                       "height": row.height, "split": row.split})
        for b in row.boxes:
            x0, y0, x1, y1 = b["xyxy"]
            anns.append({"image_id": k, "category_id": cat[b["label"]],
                         "bbox": [x0, y0, x1 - x0, y1 - y0]})
        anns += [{"image_id": k, "category_id": cat[c]} for c in row.unboxed]  # image tags
    for i, a in enumerate(anns, start=1):
        a["id"] = i
    categories = [{"id": i, "name": source_name(c)} for c, i in cat.items()]
    path = out / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    return path, ["importer.split_field=split"]


def _sixray(rows: list[_Row], out: Path, tax: Taxonomy, fmt: str) -> tuple[Path, list[str]]:
    path = out / "labels.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", *(source_name(c) for c in tax.names), "split"])
        for row in rows:
            _copy_png(row, out / "images" / f"{row.id}.png")
            # SIXray style: names without extension, -1 for absent
            w.writerow([row.id, *(1 if c in row.classes else -1 for c in tax.names), row.split])
    return path, ["importer.images_dir=images", "importer.split_column=split"]


def _folder(rows: list[_Row], out: Path, tax: Taxonomy, fmt: str) -> tuple[Path, list[str]]:
    for row in rows:
        _copy_png(row, out / row.split / row.folder() / f"{row.id}.png")
    return out, ["importer.split_dirs=true"]


def _labelstudio(rows: list[_Row], out: Path, tax: Taxonomy, fmt: str) -> tuple[Path, list[str]]:
    tasks = []
    for k, row in enumerate(rows, start=1):
        _copy_png(row, out / "images" / f"{row.id}.png")
        result: list[dict[str, Any]] = [
            {"type": "rectanglelabels", "original_width": row.width,
             "original_height": row.height,
             "value": {"x": 100 * b["xyxy"][0] / row.width, "y": 100 * b["xyxy"][1] / row.height,
                       "width": 100 * (b["xyxy"][2] - b["xyxy"][0]) / row.width,
                       "height": 100 * (b["xyxy"][3] - b["xyxy"][1]) / row.height,
                       "rotation": 0, "rectanglelabels": [source_name(b["label"])]}}
            for b in row.boxes
        ]
        if row.unboxed:
            result.append({"type": "choices",
                           "value": {"choices": [source_name(c) for c in row.unboxed]}})
        tasks.append({"id": k, "data": {"image": f"/data/local-files/?d=images/{row.id}.png",
                                        "split": row.split},
                      "annotations": [{"id": k, "result": result}]})
    path = out / "export.json"
    path.write_text(json.dumps(tasks))
    return path, ["importer.split_field=split"]


def _dual_energy(rows: list[_Row], out: Path, tax: Taxonomy, fmt: str) -> tuple[Path, list[str]]:
    tiff = fmt == "dual_energy_tiff"
    ext = ".tif" if tiff else ".png"
    for row in rows:
        if row.raw is None:
            raise ValueError(f"{row.id}: no raw image (make the dataset with save_raw=True)")
        pair = np.asarray(Image.open(row.raw))
        assert pair.dtype == np.uint16 and pair.shape[0] == 2 * row.height
        folder = out / row.split / row.folder()
        folder.mkdir(parents=True, exist_ok=True)
        for half, suffix in ((pair[: row.height], "_lo"), (pair[row.height :], "_hi")):
            kw = {"compression": "tiff_lzw"} if tiff else {}  # as scanners write them
            path = folder / f"{row.id}{suffix}{ext}"
            Image.fromarray(np.ascontiguousarray(half)).save(path, **kw)
        if tiff:  # the scanner's pseudo-colour image, RGBA like HUMS's
            Image.open(row.image).convert("RGBA").save(folder / f"{row.id}_colored.tif",
                                                       compression="tiff_lzw")
    return out, ["importer.split_dirs=true"]


_WRITERS = {"voc": _voc, "yolo": _yolo, "coco": _coco, "sixray": _sixray, "folder": _folder,
            "labelstudio": _labelstudio, "dual_energy": _dual_energy}
