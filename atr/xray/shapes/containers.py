"""Containers: the cardboard box or envelope around the contents (never a class)."""

from __future__ import annotations

import numpy as np

from atr.xray.shapes import Shape, ShapeContext, family, rect


@family("parcel_box")
def parcel_box(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    w, h = rng.uniform(22, 40), rng.uniform(16, 32)
    wall = rng.uniform(0.3, 0.7)  # corrugated board, seen through lid + bottom
    side = rng.uniform(8, 25)  # the side walls project edge-on: a thick rim
    rim = 0.6
    prims = [
        rect("cardboard", 2 * wall, 0, 0, w, h),
        rect("cardboard", side, -w / 2 + rim / 2, 0, rim, h),
        rect("cardboard", side, w / 2 - rim / 2, 0, rim, h),
        rect("cardboard", side, 0, -h / 2 + rim / 2, w - 2 * rim, rim),
        rect("cardboard", side, 0, h / 2 - rim / 2, w - 2 * rim, rim),
        rect("polyethylene", 0.01, 0, 0, w * 0.9, rng.uniform(4, 6)),  # packing tape
    ]
    return Shape(prims, w / 2, h / 2)


@family("envelope")
def envelope(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    w, h = rng.uniform(20, 25), rng.uniform(11, 17)
    padded = rng.random() < 0.4  # bubble mailer: a polyethylene liner
    prims = [rect("paper", 0.03, 0, 0, w, h)]
    if padded:
        prims.append(rect("polyethylene", rng.uniform(0.1, 0.3), 0, 0, w - 0.4, h - 0.4))
    return Shape(prims, w / 2, h / 2, flat=True)
