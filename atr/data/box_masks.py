"""Object boxes as training targets of the localisation head (atr/models/localisation_head.py).

A manifest row's `boxes` (JSON list of {"label", "xyxy"} in the image's own pixels) become
one binary mask per threat class at the decoded image's size, so that every geometric
augmentation moves them with the pixels (albumentations applies its spatial steps to a
`mask` with nearest-neighbour sampling); then the package's own geometry
(PreprocessSpec.geometry: letterbox / stretch / pitch) places them on the model's canvas,
and each heat-map cell's target is the share of it the object covers, doubled and capped at
1 (a cell half covered is a full positive). A class present in an item but smaller than
half a cell would otherwise have no positive cell: its best-covered cell is set to 1.

Which (item, class) pairs teach the head (`valid`): a class the item does not hold (target
0: the whole map must stay cold) and a class it holds with boxes of it. A class the item
holds without a box (image-level labels only, as in SIXray) says nothing about where, so it
contributes no loss; nor does an unknown label (NaN).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import cv2
import numpy as np

from atr.package.preprocess import PreprocessSpec


def clip_xyxy(xyxy: Sequence[float], width: float, height: float) -> list[float] | None:
    """A pixel box [x0, y0, x1, y1] clipped to a width x height image, corners put in
    order; None when nothing of it is left inside (annotators overshoot, and flip corners)."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    x0, x1 = sorted((min(max(x0, 0.0), width), min(max(x1, 0.0), width)))
    y0, y1 = sorted((min(max(y0, 0.0), height), min(max(y1, 0.0), height)))
    return [x0, y0, x1, y1] if x1 > x0 and y1 > y0 else None


def class_masks(boxes: str | list[dict], classes: Sequence[str], height: int,
                width: int) -> np.ndarray:
    """uint8 H x W x C: 1 inside any box of class c (boxes clipped to the image)."""
    parsed = json.loads(boxes) if isinstance(boxes, str) else list(boxes or [])
    mask = np.zeros((height, width, len(classes)), np.uint8)
    index = {c: k for k, c in enumerate(classes)}
    for box in parsed:
        k = index.get(box.get("label"))
        if k is None:
            continue
        x0, y0, x1, y1 = (float(v) for v in box["xyxy"])
        c0, r0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        c1, r1 = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
        if c1 > c0 and r1 > r0:
            mask[r0:r1, c0:c1, k] = 1
    return mask


def canvas_mask(mask: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """H x W x C mask -> S x S x C on the model's canvas, placed as the image is."""
    s, (h, w), c = spec.input_size, mask.shape[:2], mask.shape[2]
    new_w, new_h, px, py = spec.geometry(h, w)
    out = np.zeros((s, s, c), np.uint8)
    for k in range(c):  # per channel: cv2 drops a single channel's axis
        plane = mask[:, :, k]
        if (new_w, new_h) != (w, h):
            plane = cv2.resize(plane, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
        out[py:py + new_h, px:px + new_w, k] = plane
    return out


def grid_targets(canvas: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """S x S x C canvas mask -> float32 C x gh x gw cell targets (see the module doc)."""
    gh, gw = grid
    c = canvas.shape[2]
    out = np.zeros((c, gh, gw), np.float32)
    for k in range(c):
        plane = canvas[:, :, k].astype(np.float32)
        if not plane.any():
            continue
        share = cv2.resize(plane, (gw, gh), interpolation=cv2.INTER_AREA)
        cell = np.minimum(1.0, 2.0 * share)
        cell.flat[int(np.argmax(share))] = 1.0
        out[k] = cell
    return out


def box_targets(mask: np.ndarray, labels: np.ndarray, spec: PreprocessSpec,
                grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(cell targets C x gh x gw, valid C) for one augmented item: `mask` its H x W x C
    class masks, `labels` its C image-level targets of the same classes."""
    targets = grid_targets(canvas_mask(mask, spec), grid)
    has_box = targets.reshape(len(labels), -1).max(axis=1) > 0
    valid = (labels == 0) | ((labels == 1) & has_box)
    return targets, valid.astype(np.float32)
