"""Parametric shape families: one function per family, looked up by name.

A taxonomy class names its family in its `shape` field, so a new class (say
`perfume`) can reuse an existing family (`bottle`). A family draws random
sizes, proportions and parts from the generator it is given and returns the
object in its own frame (cm); the scene places, rotates and rasterises it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from atr.xray.thickness_map import Primitive


@dataclass
class ShapeContext:
    small: bool = False  # draw from the small end of the size range (hard cases)
    flat: bool = False  # must fit in an envelope: flat variants only


@dataclass
class Shape:
    prims: list[Primitive]
    half_w: float  # cm, for placement and fitting
    half_h: float
    cavity: tuple[float, float, float, float, float] | None = None  # cx, cy, hw, hh, depth
    flat: bool = False  # thin enough for an envelope
    extra: dict = field(default_factory=dict)

    @property
    def max_thickness(self) -> float:
        return max((p.thickness for p in self.prims), default=0.0)


Family = Callable[[np.random.Generator, ShapeContext], Shape]
SHAPE_FAMILIES: dict[str, Family] = {}


def family(name: str) -> Callable[[Family], Family]:
    def register(fn: Family) -> Family:
        SHAPE_FAMILIES[name] = fn
        return fn

    return register


def shape_family(name: str) -> Family:
    _load()
    try:
        return SHAPE_FAMILIES[name]
    except KeyError:
        raise KeyError(
            f"no shape family {name!r}; known: {', '.join(sorted(SHAPE_FAMILIES))}"
        ) from None


def _load() -> None:
    # Importing the modules registers their families.
    from atr.xray.shapes import containers, goods, paper, threats  # noqa: F401


# Short constructors keep the families readable: material, thickness, geometry.
def rect(mat: str, t: float, cx: float, cy: float, w: float, h: float, ang: float = 0.0,
         rnd: bool = False) -> Primitive:
    return Primitive("rect", mat, float(t), (cx, cy, w / 2, h / 2, ang), rnd)


def ell(mat: str, t: float, cx: float, cy: float, w: float, h: float, ang: float = 0.0,
        rnd: bool = True) -> Primitive:
    return Primitive("ellipse", mat, float(t), (cx, cy, w / 2, h / 2, ang), rnd)


def cap(mat: str, t: float, x0: float, y0: float, x1: float, y1: float, r: float,
        rnd: bool = True) -> Primitive:
    return Primitive("capsule", mat, float(t), (x0, y0, x1, y1, r), rnd)


def ring(mat: str, t: float, cx: float, cy: float, r_out: float, r_in: float) -> Primitive:
    return Primitive("ring", mat, float(t), (cx, cy, r_out, r_in))


def poly(mat: str, t: float, *pts: tuple[float, float]) -> Primitive:
    return Primitive("poly", mat, float(t), tuple(c for p in pts for c in p))


def scale_shape(shape: Shape, f: float, dx: float = 0.0, dy: float = 0.0) -> Shape:
    """Scale in-plane geometry by f and shift by (dx, dy); thicknesses unchanged."""
    out = []
    for p in shape.prims:
        g = p.geom
        if p.kind in ("rect", "ellipse"):
            geom = (g[0] * f + dx, g[1] * f + dy, g[2] * f, g[3] * f, g[4])
        elif p.kind == "capsule":
            geom = (g[0] * f + dx, g[1] * f + dy, g[2] * f + dx, g[3] * f + dy, g[4] * f)
        elif p.kind == "ring":
            geom = (g[0] * f + dx, g[1] * f + dy, g[2] * f, g[3] * f)
        else:
            geom = tuple(c * f + (dx if i % 2 == 0 else dy) for i, c in enumerate(g))
        out.append(replace(p, geom=geom))
    return replace(shape, prims=out, half_w=shape.half_w * f, half_h=shape.half_h * f)
