"""Paper products: documents, letters, magazines, books, notebooks.

Staples, paper clips and spiral bindings are part of the paper product (an
officer still calls such an item "paper only"), so they are drawn here as
small steel parts of the same object, not as separate goods.
"""

from __future__ import annotations

import numpy as np

from atr.xray.shapes import Shape, ShapeContext, cap, family, rect, ring

SHEET_CM = 0.01  # one sheet of 80 g/m^2 paper


def _staple(x: float, y: float, ang: float) -> list:
    dx, dy = 0.6 * np.cos(ang), 0.6 * np.sin(ang)
    return [cap("steel", 0.05, x - dx, y - dy, x + dx, y + dy, 0.035)]


def _paper_clip(rng: np.random.Generator, x: float, y: float) -> list:
    length, width = rng.uniform(2.5, 4.5), rng.uniform(0.7, 1.0)
    return [
        cap("steel", 0.08, x, y, x, y + length, 0.04),
        cap("steel", 0.08, x + width, y + 0.3, x + width, y + length, 0.04),
        cap("steel", 0.08, x, y + length, x + width, y + length, 0.04),
        cap("steel", 0.08, x + width / 2, y + 0.5, x + width / 2, y + length * 0.8, 0.04),
    ]


@family("document")
def document(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    kind = rng.choice(["letter", "a4", "magazine", "bundle"], p=[0.35, 0.25, 0.2, 0.2])
    w, h = (21.0, 29.7) if kind in ("a4", "magazine") else (21.0, 10.0 * rng.uniform(0.9, 1.4))
    w, h = w * rng.uniform(0.85, 1.05), h * rng.uniform(0.85, 1.05)
    sheets = {"letter": rng.integers(1, 6) * 3, "a4": rng.integers(1, 30),
              "magazine": rng.integers(20, 120), "bundle": rng.integers(10, 60)}[kind]
    prims = [rect("paper", sheets * SHEET_CM, 0, 0, w, h)]
    if kind == "magazine" or (kind != "letter" and rng.random() < 0.5):
        for y in (-h / 4, h / 4) if kind == "magazine" else (-h / 2 + 1.0,):
            x = -w / 2 + 0.5 if kind == "magazine" else -w / 2 + 1.0
            prims += _staple(x, y, np.pi / 2 if kind == "magazine" else np.pi / 4)
    if rng.random() < 0.25:
        prims += _paper_clip(rng, w / 2 - 2.5, -h / 2 - 0.5)
    if kind == "bundle":  # several letters fanned out
        for _ in range(rng.integers(1, 4)):
            prims.append(rect("paper", rng.integers(1, 8) * SHEET_CM, rng.uniform(-2, 2),
                              rng.uniform(-2, 2), w * 0.9, h * 0.9, rng.uniform(-0.2, 0.2)))
    return Shape(prims, w / 2, h / 2, flat=True)


@family("book")
def book(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    w, h = rng.uniform(11, 22), rng.uniform(16, 29)
    depth = rng.uniform(0.6, 4.5) if not ctx.flat else rng.uniform(0.3, 1.0)
    hard = rng.random() < 0.4
    prims = [rect("paper", depth, 0, 0, w, h)]
    prims.append(rect("cardboard" if not hard else "paper", 0.4 if hard else 0.05,
                      0, 0, w + 0.3, h + 0.3))
    prims.append(rect("paper", depth * 0.3, -w / 2 + 0.4, 0, 0.8, h, rnd=True))  # spine
    if rng.random() < 0.3:  # spiral-bound notebook: a row of small steel rings
        n = int(h / 0.9)
        for i in range(n):
            y = -h / 2 + (i + 0.5) * h / n
            prims.append(ring("steel", 0.1, -w / 2, y, 0.45, 0.36))
    elif rng.random() < 0.2:
        prims += _staple(-w / 2 + 0.4, -h / 4, np.pi / 2) + _staple(-w / 2 + 0.4, h / 4, np.pi / 2)
    cavity = (0.5, 0.0, w / 2 - 2.0, h / 2 - 2.5, depth * 0.8)
    return Shape(prims, w / 2, h / 2, cavity=cavity, flat=depth < 1.2)
