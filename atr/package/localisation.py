"""Where the evidence is: a model's heat-map -> boxes and peak in the ORIGINAL image's pixels.

A package whose network has the optional `heatmap` output (sigmoid, N x C x h x w over the
canvas, C = the threat classes) states it in `localisation.json` (LocalisationSpec: the
classes in order, the grid, how boxes are cut). Serving, the pyfunc and the benchmarks
turn one item's heat-map into the prediction store's `localisation` record (docs/store.md):
  {"boxes": [{"label", "score", "xyxy": [x0, y0, x1, y1]}], "peak": {"label", "score",
   "xy": [x, y]}}
Per class whose map peaks at `min_score` or more, the map is upsampled bilinearly
(`upsample` x, sub-cell boxes), cut at `box_threshold` x its peak, and every 8-connected
blob is a box scored by its own maximum. Coordinates go back through the package's own
geometry (PreprocessSpec.geometry: letterbox / stretch / pitch), so a box is drawn where
the object is in the scan as it came in, not on the model's canvas.
No torch here: serving imports this module. Called only for items that are not cleared.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from atr.package.preprocess import PreprocessSpec

HEATMAP_OUTPUT = "heatmap"
MAX_BOXES = 10  # per item: the reply stays compact; the strongest are kept


@dataclass(frozen=True)
class LocalisationSpec:
    classes: tuple[str, ...]  # the heat-map's channels, in order (the threat outputs)
    grid: tuple[int, int]  # (h, w) cells over the canvas
    method: str = "heatmap_head"  # atr/models/localisation_head.py
    output: str = HEATMAP_OUTPUT
    box_threshold: float = 0.5  # a box is the blob above this share of its class's peak
    min_score: float = 0.1  # classes whose map never reaches this get no box
    upsample: int = 4
    extra: dict[str, Any] = field(default_factory=dict)  # what the producer recorded

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "grid", tuple(int(g) for g in self.grid))
        if not self.classes or len(self.grid) != 2 or min(self.grid) < 1:
            raise ValueError(f"localisation spec: classes {self.classes}, grid {self.grid}")
        if not 0 < self.box_threshold < 1 or not 0 <= self.min_score < 1 or self.upsample < 1:
            raise ValueError("localisation spec: box_threshold in (0, 1), min_score in [0, 1),"
                             " upsample >= 1")

    def to_json(self) -> str:
        doc = asdict(self)
        doc["classes"], doc["grid"] = list(self.classes), list(self.grid)
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> LocalisationSpec:
        raw = json.loads(Path(path).read_text())
        unknown = sorted(set(raw) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{path}: unknown field(s) {unknown}")
        return cls(**raw)


def write_localisation_spec(path: str | Path, classes: list[str], grid: tuple[int, int],
                            input_size: int) -> Path:
    path = Path(path)
    spec = LocalisationSpec(classes=tuple(classes), grid=grid,
                            extra={"input_size": int(input_size), "stride": input_size // grid[1]})
    path.write_text(spec.to_json())
    return path


def _to_original(xs: np.ndarray, ys: np.ndarray, pre: PreprocessSpec, fine: tuple[int, int],
                 height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Fine-grid coordinates (in fine pixels, edges) -> original image pixels, clipped."""
    s = pre.input_size
    new_w, new_h, px, py = pre.geometry(height, width)
    cx = xs * (s / fine[1])
    cy = ys * (s / fine[0])
    return (np.clip((cx - px) * width / new_w, 0, width),
            np.clip((cy - py) * height / new_h, 0, height))


def localise(heatmap: np.ndarray, spec: LocalisationSpec, pre: PreprocessSpec,
             height: int, width: int) -> dict[str, Any]:
    """One item's heat-map (C x h x w) -> the store's localisation record; `height`,
    `width`: the scan's own size (the decoded image's shape)."""
    heat = np.nan_to_num(np.asarray(heatmap, np.float32), nan=0.0)
    if heat.ndim != 3 or heat.shape[0] != len(spec.classes):
        raise ValueError(f"heat-map of shape {heat.shape}; the package names "
                         f"{len(spec.classes)} classes {list(spec.classes)}")
    f = spec.upsample
    fine = (heat.shape[1] * f, heat.shape[2] * f)
    boxes: list[dict[str, Any]] = []
    best = (-1.0, 0, 0.0, 0.0)  # score, class, x, y (fine pixels, centre)
    for k, label in enumerate(spec.classes):
        m = heat[k]
        if f > 1:  # half-pixel aligned: cell centres stay where they are on the canvas
            m = ndimage.zoom(m, f, order=1, mode="nearest", grid_mode=True)
        r, c = np.unravel_index(int(np.argmax(m)), m.shape)
        peak = float(m[r, c])
        if peak > best[0]:
            best = (peak, k, c + 0.5, r + 0.5)
        if peak < spec.min_score:
            continue
        blobs, n = ndimage.label(m >= spec.box_threshold * peak, structure=np.ones((3, 3)))
        for i, found in enumerate(ndimage.find_objects(blobs), start=1):
            if found is None:
                continue
            score = float(m[found][blobs[found] == i].max())
            if score < spec.min_score:
                continue
            xs, ys = _to_original(np.array([found[1].start, found[1].stop], float),
                                  np.array([found[0].start, found[0].stop], float),
                                  pre, fine, height, width)
            boxes.append({"label": label, "score": round(score, 4),
                          "xyxy": [round(float(v), 1) for v in (xs[0], ys[0], xs[1], ys[1])]})
    boxes.sort(key=lambda b: -b["score"])
    score, k, x, y = best
    px, py = _to_original(np.array([x]), np.array([y]), pre, fine, height, width)
    return {"boxes": boxes[:MAX_BOXES],
            "peak": {"label": spec.classes[k], "score": round(max(score, 0.0), 4),
                     "xy": [round(float(px[0]), 1), round(float(py[0]), 1)]}}
