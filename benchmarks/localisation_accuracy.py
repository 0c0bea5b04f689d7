"""Where the evidence is, measured: pointing accuracy and box AP@0.5 of a model package's
heat-map (atr/package/localisation.py, the code serving runs) against true object boxes.

  .venv/bin/python benchmarks/localisation_accuracy.py --package DIR --dataset DIR
      [--split test] [--hums /work/realdata/hums] [--out FILE.json]

On the simulator's split (manifest `boxes`): per item holding a threat, the heat-map's
overall peak falls inside a true threat box of any class (pointing, class-agnostic), and
per (item, true threat class) the peak of that class's own map falls inside a box of that
class (pointing, per class), beside the blind baseline of pointing at the image centre;
box AP@0.5 per threat class (VOC all-point, greedy matching
by score, boxes cut with min_score 0.01 so that the ranking, not the floor, decides).
On HUMS (--hums: ThreatsRGB/*.jpg pseudo-colour pictures + Annotation/*.xml VOC knife
boxes; academic licence, read in place, never copied): the same for `knife`. HUMS pictures
are not the simulator's renders: a domain gap is expected; the figures say how large.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from atr.package.localisation import localise  # noqa: E402
from atr.package.onnx_scorer import load_scorer  # noqa: E402

Items = list[tuple[str, list[dict[str, Any]]]]  # (image path, true boxes {label, xyxy})


def simulator_items(dataset: Path, split: str, threats: list[str]) -> Items:
    rows = pd.read_parquet(dataset / "manifest.parquet")
    rows = rows[rows["split"] == split]
    return [(str(dataset / r.image), [b for b in json.loads(r.boxes) if b["label"] in threats])
            for r in rows.itertuples()]


def hums_items(folder: Path) -> Items:
    items = []
    for xml in sorted((folder / "Annotation").glob("*.xml")):
        image = folder / "ThreatsRGB" / f"{xml.stem}.jpg"
        if not image.is_file():
            continue
        boxes = []
        for obj in ET.parse(xml).getroot().iter("object"):
            if (obj.findtext("name") or "").strip().lower() == "knife":
                bb = obj.find("bndbox")
                boxes.append({"label": "knife", "xyxy": [float(bb.findtext(t)) for t in
                                                         ("xmin", "ymin", "xmax", "ymax")]})
        items.append((str(image), boxes))
    return items


def _inside(xy: list[float], box: list[float]) -> bool:
    return box[0] <= xy[0] <= box[2] and box[1] <= xy[1] <= box[3]


def _iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def average_precision(preds: list[tuple[float, int, list[float]]],
                      truth: dict[int, list[list[float]]], iou: float = 0.5) -> float | None:
    """VOC all-point AP of scored boxes (score, item, xyxy) against true boxes per item."""
    total = sum(len(v) for v in truth.values())
    if total == 0:
        return None
    used = {k: [False] * len(v) for k, v in truth.items()}
    hits = []
    for _, item, box in sorted(preds, key=lambda p: -p[0]):
        cands = truth.get(item, [])
        ious = [_iou(box, t) for t in cands]
        j = int(np.argmax(ious)) if ious else -1
        ok = j >= 0 and ious[j] >= iou and not used[item][j]
        if ok:
            used[item][j] = True
        hits.append(ok)
    tp = np.cumsum(hits)
    recall = np.concatenate([[0], tp / total, [tp[-1] / total if len(tp) else 0]])
    precision = np.concatenate([[1], tp / np.arange(1, len(tp) + 1), [0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(recall) * precision[1:]))


def class_peak(heat: np.ndarray, k: int, scorer: Any, h: int, w: int) -> list[float]:
    """The peak of class k's own map, in the scan's pixels (localise on that map alone)."""
    spec = dataclasses.replace(scorer.localisation, classes=(scorer.localisation.classes[k],))
    return localise(heat[k:k + 1], spec, scorer.preprocess, h, w)["peak"]["xy"]


def evaluate(scorer: Any, items: Items, batch: int = 32) -> dict[str, Any]:
    spec = dataclasses.replace(scorer.localisation, min_score=0.01)
    classes = list(spec.classes)
    point_any, centre, point_class = [], [], {c: [] for c in classes}
    preds: dict[str, list] = {c: [] for c in classes}
    truth: dict[str, dict[int, list]] = {c: {} for c in classes}
    started = time.perf_counter()
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        images = [scorer.preprocess.decode(p) for p, _ in chunk]
        _, _, heat = scorer.score_images_localised(images)
        for j, ((_, boxes), image) in enumerate(zip(chunk, images, strict=True)):
            i, (h, w) = start + j, image.shape[:2]
            loc = localise(heat[j], spec, scorer.preprocess, h, w)
            for b in loc["boxes"]:
                preds[b["label"]].append((b["score"], i, b["xyxy"]))
            for b in boxes:
                truth[b["label"]].setdefault(i, []).append(b["xyxy"])
            if boxes:
                point_any.append(any(_inside(loc["peak"]["xy"], b["xyxy"]) for b in boxes))
                centre.append(any(_inside([w / 2, h / 2], b["xyxy"]) for b in boxes))
            for c in {b["label"] for b in boxes}:
                xy = class_peak(heat[j], classes.index(c), scorer, h, w)
                point_class[c].append(any(_inside(xy, b["xyxy"]) for b in boxes
                                          if b["label"] == c))
    ap = {c: average_precision(preds[c], truth[c]) for c in classes}
    defined = [v for v in ap.values() if v is not None]
    return {
        "items": len(items), "items_with_threat_boxes": len(point_any),
        "pointing_accuracy_any_class": float(np.mean(point_any)) if point_any else None,
        # the blind baseline: the image centre, pointed at without looking
        "pointing_baseline_image_centre": float(np.mean(centre)) if centre else None,
        "pointing_accuracy_per_class": {c: {"n": len(v), "accuracy": float(np.mean(v))}
                                        for c, v in point_class.items() if v},
        "box_ap50": {c: v for c, v in ap.items() if v is not None},
        "box_map50": float(np.mean(defined)) if defined else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--package", type=Path, required=True)
    ap.add_argument("--dataset", type=Path, help="a simulator dataset folder (manifest boxes)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--hums", type=Path, help="the HUMS folder (ThreatsRGB/, Annotation/)")
    ap.add_argument("--out", type=Path,
                    default=Path("benchmarks/results/localisation_accuracy.json"))
    args = ap.parse_args(argv)
    scorer = load_scorer(args.package, require_policy=False)
    if scorer.localisation is None:
        raise SystemExit(f"{args.package}: the package has no heat-map (localisation.json)")
    result: dict[str, Any] = {"package": str(args.package), "machine": describe(),
                              "localisation": json.loads(scorer.localisation.to_json()),
                              "preprocess": scorer.preprocess.to_dict()}
    if args.dataset:
        items = simulator_items(args.dataset, args.split, list(scorer.localisation.classes))
        result["simulator"] = {"dataset": str(args.dataset), "split": args.split,
                               **evaluate(scorer, items)}
    if args.hums:
        result["hums_threats_rgb"] = {"folder": "HUMS ThreatsRGB + Annotation (not copied)",
                                      **evaluate(scorer, hums_items(args.hums))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine", "preprocess")},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
