"""Ordinary goods: clothing, shoes, bottles, food, toys, electronics, cables,
jewellery and tools. Several carry metal or lithium cells on purpose: the
model must learn that a phone's battery is not a loose lithium battery."""

from __future__ import annotations

import numpy as np

from atr.xray.shapes import Shape, ShapeContext, cap, ell, family, rect, ring


@family("clothing")
def clothing(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    w, h = rng.uniform(18, 34), rng.uniform(14, 28)
    t = rng.uniform(1.5, 7.0) if not ctx.flat else rng.uniform(0.5, 1.0)
    prims = [ell("textile", t, 0, 0, w, h, rnd=True),
             rect("textile", t * 0.6, rng.uniform(-3, 3), rng.uniform(-3, 3), w * 0.8, h * 0.6)]
    if rng.random() < 0.4:  # zip: a line of small steel teeth
        prims.append(cap("steel", 0.15, -w * 0.3, -h * 0.3, -w * 0.3, h * 0.3, 0.25, rnd=False))
    for _ in range(rng.integers(0, 5)):  # buttons / rivets
        prims.append(ell(str(rng.choice(["polyethylene", "brass"])), 0.2,
                         rng.uniform(-w / 3, w / 3), rng.uniform(-h / 3, h / 3), 1.2, 1.2))
    return Shape(prims, w / 2, h / 2, flat=ctx.flat)


@family("shoes")
def shoes(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    length, width = rng.uniform(22, 31), rng.uniform(8, 11)
    prims = []
    for side in ((-width * 0.6,) if rng.random() < 0.3 else (-width * 0.6, width * 0.6)):
        prims += [ell("rubber", rng.uniform(1.5, 3.0), 0, side, length, width, rnd=False),
                  ell("textile", rng.uniform(5, 9), length * 0.05, side, length * 0.8, width * 0.9)]
        if rng.random() < 0.4:
            prims.append(cap("steel", 0.2, -length * 0.3, side, length * 0.05, side, 0.5, False))
    return Shape(prims, length / 2, width * 1.2,
                 cavity=(length * 0.1, -width * 0.6, length * 0.3, width * 0.3, 3.0))


@family("bottle")
def bottle(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    length, dia = rng.uniform(8, 26), rng.uniform(3, 8)
    wall = str(rng.choice(["pet", "glass", "polyethylene"]))
    fill = rng.uniform(0.3, 1.0)
    prims = [rect(wall, dia * (0.06 if wall == "glass" else 0.03) * 2, 0, 0, length, dia, rnd=True),
             rect("water", dia, -length * (1 - fill) / 2, 0, length * fill, dia * 0.95, rnd=True),
             rect(str(rng.choice(["polyethylene", "aluminium"])), dia * 0.5,
                  length / 2 + 1.0, 0, 2.0, dia * 0.45, rnd=True)]  # cap
    return Shape(prims, length / 2 + 2.0, dia / 2)


@family("food")
def food(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    kind = rng.choice(["box", "can", "bar", "bag"])
    if kind == "can":
        dia, length = rng.uniform(6, 10), rng.uniform(8, 14)
        prims = [rect("water", dia, 0, 0, length, dia, rnd=True),
                 rect(str(rng.choice(["steel", "aluminium"])), 0.04, 0, 0, length, dia, rnd=True)]
        return Shape(prims, length / 2, dia / 2)
    w, h = rng.uniform(8, 25), rng.uniform(5, 18)
    t = {"box": rng.uniform(3, 8), "bar": rng.uniform(0.8, 1.5), "bag": rng.uniform(2, 6)}[kind]
    prims = [rect("cardboard" if kind == "box" else "polyethylene", 0.1, 0, 0, w, h),
             (rect if kind != "bag" else ell)("sugar", t, 0, 0, w * 0.95, h * 0.95)]
    if kind == "bar":
        prims.append(rect("aluminium", 0.002, 0, 0, w, h))  # foil wrap
    return Shape(prims, w / 2, h / 2, flat=kind == "bar")


@family("toy")
def toy(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    w, h = rng.uniform(8, 25), rng.uniform(8, 25)
    prims = [ell("polyethylene", rng.uniform(1, 6), 0, 0, w, h, rnd=True)]
    for _ in range(rng.integers(1, 5)):  # limbs, wheels, blocks
        prims.append(ell("polyethylene", rng.uniform(0.5, 3), rng.uniform(-w / 2, w / 2),
                         rng.uniform(-h / 2, h / 2), rng.uniform(3, 8), rng.uniform(2, 5),
                         rng.uniform(0, np.pi)))
    if rng.random() < 0.4:  # battery-powered: motor, AA cells, screws
        prims += [rect("copper", 1.5, 0, 0, 2.5, 2.0, rnd=True),
                  rect("steel", 1.4, 3, 0, 5.0, 1.4, rnd=True)]
    return Shape(prims, w / 2 + 2, h / 2 + 2)


@family("electronics")
def electronics(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    kind = rng.choice(["phone", "laptop", "charger", "tablet"], p=[0.4, 0.2, 0.25, 0.15])
    if kind == "charger":
        w, h = rng.uniform(4, 8), rng.uniform(4, 9)
        prims = [rect("polyethylene", 3.0, 0, 0, w, h), rect("pcb", 0.2, 0, 0, w * 0.8, h * 0.8),
                 rect("copper", 1.2, 0, h * 0.1, w * 0.4, h * 0.3, rnd=True),
                 rect("brass", 0.3, 0, -h / 2 - 1, w * 0.5, 2.0)]
        return Shape(prims, w / 2, h / 2 + 2)
    size = {"phone": (7.5, 15.5), "tablet": (17, 24), "laptop": (22, 33)}[kind]
    w, h = size[0] * rng.uniform(0.9, 1.1), size[1] * rng.uniform(0.9, 1.1)
    prims = [rect("aluminium", 0.15, 0, 0, w, h), rect("glass", 0.07, 0, 0, w * 0.96, h * 0.96),
             rect("pcb", 0.15, 0, -h * 0.3, w * 0.8, h * 0.3)]
    cells = 1 if kind == "phone" else int(rng.integers(2, 5))
    for i in range(cells):  # pouch cells in the device: a confuser for loose batteries
        prims.append(rect("li_cell", 0.5 if kind != "phone" else 0.45,
                          (i - (cells - 1) / 2) * w / cells, h * 0.15, w * 0.8 / cells, h * 0.45))
    for sx in (-1, 1):
        for sy in (-1, 1):
            prims.append(ell("steel", 0.3, sx * (w / 2 - 0.6), sy * (h / 2 - 0.6), 0.4, 0.4))
    return Shape(prims, w / 2, h / 2, cavity=(0, h * 0.15, w * 0.35, h * 0.2, 0.6),
                 flat=kind == "phone")


@family("cable")
def cable(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    pts = np.cumsum(rng.normal(0, 2.5, size=(int(rng.integers(6, 16)), 2)), axis=0)
    pts -= pts.mean(axis=0)
    r = rng.uniform(0.15, 0.35)
    prims = []
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:], strict=True):
        prims += [cap("polyethylene", 2 * r, x0, y0, x1, y1, r),
                  cap("copper", 0.5 * r, x0, y0, x1, y1, 0.3 * r)]
    ext = np.abs(pts).max(axis=0) + r
    return Shape(prims, float(ext[0]), float(ext[1]), flat=True)


@family("jewellery")
def jewellery(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    metal = str(rng.choice(["silver", "brass", "steel"]))
    prims = []
    for _ in range(rng.integers(1, 4)):  # rings and bangles
        r = rng.uniform(0.9, 1.2) if rng.random() < 0.6 else rng.uniform(3, 4)
        prims.append(ring(metal, 0.2, rng.uniform(-2, 2), rng.uniform(-2, 2), r, r - 0.2))
    if rng.random() < 0.6:  # a chain: many tiny links along a curve
        ang = np.linspace(0, rng.uniform(2, 6), 30)
        rad = rng.uniform(2, 4)
        for a0, a1 in zip(ang[:-1], ang[1:], strict=True):
            prims.append(cap(metal, 0.1, rad * np.cos(a0), rad * np.sin(a0),
                             rad * np.cos(a1), rad * np.sin(a1), 0.06))
    return Shape(prims, 5.0, 5.0, flat=True)


@family("tool")
def tool(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    kind = rng.choice(["screwdriver", "wrench", "pliers"])
    length = rng.uniform(12, 25)
    if kind == "screwdriver":
        prims = [rect("polyethylene", 2.5, -length / 3, 0, length / 3, 2.8, rnd=True),
                 cap("steel", 0.6, -length / 6, 0, length / 2, 0, 0.3)]
    elif kind == "wrench":
        prims = [rect("steel", 0.5, 0, 0, length * 0.8, 1.4),
                 ring("steel", 0.6, -length / 2, 0, 1.6, 0.8),
                 ring("steel", 0.6, length / 2, 0, 1.4, 0.7)]
    else:
        prims = [cap("steel", 0.8, -length / 2, -1.2, length / 6, 0, 0.5),
                 cap("steel", 0.8, -length / 2, 1.2, length / 6, 0, 0.5),
                 cap("steel", 0.6, length / 6, 0, length / 2, 0.3, 0.5)]
    return Shape(prims, length / 2 + 1, 2.5)
