"""Rasterising parametric shapes into per-material thickness maps (cm).

An object is a list of primitives in its own frame (cm, origin at its
centre). Placing it gives a similarity transform (centre in pixels, angle,
pixels per cm). Each primitive is evaluated only inside its own bounding box
in the image, and added to the thickness image of its material: overlapping
objects simply add up along the ray, which is what a projection does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atr.xray.materials import MATERIAL_INDEX


@dataclass(frozen=True)
class Primitive:
    """One solid of one material. `kind` is rect, ellipse, capsule, ring or poly.

    `round` gives a curved thickness profile (a cylinder or ellipsoid seen
    from the side) instead of a flat slab; negative `thickness` cuts a cavity.
    """

    kind: str
    material: str
    thickness: float  # cm, peak
    geom: tuple[float, ...]  # kind-specific, object frame (cm)
    round: bool = False

    def extent(self) -> tuple[float, float, float, float]:
        """(u0, u1, v0, v1) bounding box in the object frame."""
        g = self.geom
        if self.kind in ("rect", "ellipse"):
            cx, cy, hw, hh, ang = g
            c, s = abs(np.cos(ang)), abs(np.sin(ang))
            ew, eh = c * hw + s * hh, s * hw + c * hh
            return cx - ew, cx + ew, cy - eh, cy + eh
        if self.kind == "capsule":
            x0, y0, x1, y1, r = g
            return min(x0, x1) - r, max(x0, x1) + r, min(y0, y1) - r, max(y0, y1) + r
        if self.kind == "ring":
            cx, cy, r_out, _ = g
            return cx - r_out, cx + r_out, cy - r_out, cy + r_out
        pts = np.asarray(g).reshape(-1, 2)
        return pts[:, 0].min(), pts[:, 0].max(), pts[:, 1].min(), pts[:, 1].max()

    def evaluate(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Thickness (cm) at object-frame points (u, v)."""
        g, t = self.geom, self.thickness
        if self.kind in ("rect", "ellipse"):
            cx, cy, hw, hh, ang = g
            c, s = np.cos(ang), np.sin(ang)
            du, dv = u - cx, v - cy
            a = (c * du + s * dv) / hw
            b = (-s * du + c * dv) / hh
            if self.kind == "rect":
                inside = (np.abs(a) <= 1) & (np.abs(b) <= 1)
                depth = np.sqrt(np.clip(1 - b * b, 0, 1)) if self.round else 1.0
            else:
                r2 = a * a + b * b
                inside = r2 <= 1
                depth = np.sqrt(np.clip(1 - r2, 0, 1)) if self.round else 1.0
            return np.where(inside, t * depth, 0.0)
        if self.kind == "capsule":
            x0, y0, x1, y1, r = g
            dx, dy = x1 - x0, y1 - y0
            h = np.clip(((u - x0) * dx + (v - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
            d2 = ((u - x0 - h * dx) ** 2 + (v - y0 - h * dy) ** 2) / (r * r)
            depth = np.sqrt(np.clip(1 - d2, 0, 1)) if self.round else (d2 <= 1)
            return t * depth
        if self.kind == "ring":
            cx, cy, r_out, r_in = g
            d = np.sqrt((u - cx) ** 2 + (v - cy) ** 2)
            return np.where((d <= r_out) & (d >= r_in), t, 0.0)
        # Convex polygon, counter-clockwise vertices: inside all half-planes.
        pts = np.asarray(g).reshape(-1, 2)
        inside = np.ones(np.broadcast(u, v).shape, dtype=bool)
        for (x0, y0), (x1, y1) in zip(pts, np.roll(pts, -1, axis=0), strict=True):
            inside &= (x1 - x0) * (v - y0) - (y1 - y0) * (u - x0) >= 0
        return np.where(inside, t, 0.0)


@dataclass(frozen=True)
class Placement:
    cx: float  # pixels
    cy: float
    angle: float  # radians
    px_per_cm: float


def draw(
    stack: np.ndarray, prims: list[Primitive], where: Placement
) -> tuple[int, int, int, int] | None:
    """Add the primitives into `stack` (M, H, W); return the tight pixel box of what was drawn."""
    _, height, width = stack.shape
    c, s, k = np.cos(where.angle), np.sin(where.angle), where.px_per_cm
    box = [width, height, -1, -1]
    for p in prims:
        u0, u1, v0, v1 = p.extent()
        corners = np.array([[u0, v0], [u1, v0], [u0, v1], [u1, v1]])
        xs = where.cx + k * (c * corners[:, 0] - s * corners[:, 1])
        ys = where.cy + k * (s * corners[:, 0] + c * corners[:, 1])
        x0, x1 = max(int(np.floor(xs.min())), 0), min(int(np.ceil(xs.max())) + 1, width)
        y0, y1 = max(int(np.floor(ys.min())), 0), min(int(np.ceil(ys.max())) + 1, height)
        if x0 >= x1 or y0 >= y1:
            continue
        # Pixel centres back into the object frame (inverse similarity).
        gx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - where.cx)[None, :]
        gy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - where.cy)[:, None]
        u = (c * gx + s * gy) / k
        v = (-s * gx + c * gy) / k
        patch = p.evaluate(u, v).astype(np.float32, copy=False)
        stack[MATERIAL_INDEX[p.material], y0:y1, x0:x1] += patch
        if p.thickness > 0:
            rows = np.flatnonzero(patch.any(axis=1))
            if rows.size:
                cols = np.flatnonzero(patch.any(axis=0))
                box[0], box[1] = min(box[0], x0 + cols[0]), min(box[1], y0 + rows[0])
                box[2], box[3] = max(box[2], x0 + cols[-1] + 1), max(box[3], y0 + rows[-1] + 1)
    return None if box[2] < 0 else (box[0], box[1], box[2], box[3])
