"""Threat classes: firearms and parts, knives, ammunition, narcotics, loose lithium cells.

`ctx.small` draws the hard end: a single round, a small folding knife, a
single cell, a small pack; sizes stay physical, so they are small in pixels.
"""

from __future__ import annotations

import numpy as np

from atr.xray.shapes import Shape, ShapeContext, cap, ell, family, poly, rect, ring


def _round(x: float, y: float, ang: float, cal: float, length: float) -> list:
    """One cartridge: brass case and lead bullet (lead's K-edge shows in the high channel)."""
    c, s = np.cos(ang), np.sin(ang)
    case_end = length * 0.65
    tip = (x + c * length, y + s * length)
    return [cap("brass", cal, x, y, x + c * case_end, y + s * case_end, cal / 2),
            cap("lead", cal * 0.9, x + c * case_end, y + s * case_end, *tip, cal * 0.45)]


@family("ammunition")
def ammunition(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    cal = rng.uniform(0.55, 1.2)
    length = cal * rng.uniform(2.4, 3.5)
    n = 1 if ctx.small else int(rng.integers(1, 25))
    prims = []
    if n > 6 and rng.random() < 0.5:  # a box of rounds standing in rows
        cols = int(np.ceil(np.sqrt(n)))
        prims.append(rect("cardboard", 0.3, 0, 0, cols * cal * 1.1 + 1, cols * cal * 1.1 + 1))
        for i in range(n):
            x, y = (i % cols - cols / 2 + 0.5) * cal * 1.1, (i // cols - cols / 2 + 0.5) * cal * 1.1
            prims += [ell("brass", length * 0.65, x, y, cal, cal), ell("lead", length * 0.4, x, y,
                                                                          cal * 0.85, cal * 0.85)]
        half = cols * cal * 0.6 + 0.5
        return Shape(prims, half, half)
    spread = 0.5 + np.sqrt(n) * length * 0.6
    for _ in range(n):
        prims += _round(rng.uniform(-spread, spread) / 2, rng.uniform(-spread, spread) / 2,
                        rng.uniform(0, 2 * np.pi), cal, length)
    return Shape(prims, spread / 2 + length, spread / 2 + length, flat=True)


@family("firearm")
def firearm(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    scale = rng.uniform(0.8, 1.25) * (0.8 if ctx.small else 1.0)
    length, height = 18.0 * scale, 3.0 * scale
    metal = str(rng.choice(["steel", "steel", "aluminium"]))
    slide = rect("steel", 2.6 * scale, 0, 0, length, height)
    barrel = cap("steel", 1.2 * scale, -length / 2, 0, length / 2 + 0.5, 0, 0.6 * scale)
    grip = poly(metal if rng.random() < 0.5 else "polyethylene", 2.8 * scale,
                (length * 0.15, height / 2), (length * 0.45, height / 2),
                (length * 0.55, height / 2 + 10 * scale), (length * 0.25, height / 2 + 10 * scale))
    mag = poly("steel", 2.0 * scale,
               (length * 0.22, height / 2 + 1), (length * 0.4, height / 2 + 1),
               (length * 0.48, height / 2 + 9.5 * scale), (length * 0.3, height / 2 + 9.5 * scale))
    guard = ring(metal, 1.0 * scale, length * 0.05, height / 2 + 1.8 * scale,
                 1.9 * scale, 1.4 * scale)
    variant = rng.choice(["pistol", "revolver", "parts"], p=[0.6, 0.2, 0.2])
    if variant == "parts":  # disassembled: one or two parts only (still a firearm)
        picks = rng.choice(4, size=int(rng.integers(1, 3)), replace=False)
        prims = [[slide, barrel, grip, mag][i] for i in picks]
    elif variant == "revolver":
        prims = [barrel, grip, guard, ring("steel", 3.6 * scale, -length * 0.05, 0,
                                           2.0 * scale, 0.3 * scale)]
        prims += _round(-length * 0.05, 0, 0.0, 0.9 * scale, 2.5 * scale)
    else:
        prims = [slide, barrel, grip, mag, guard]
    return Shape(prims, length / 2 + 1, height / 2 + 11 * scale)


@family("knife")
def knife(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    blade = rng.uniform(5, 9) if ctx.small else rng.uniform(8, 22)
    width = blade * rng.uniform(0.12, 0.25)
    handle = blade * rng.uniform(0.5, 0.9)
    steel_t = rng.uniform(0.15, 0.4)
    prims = [poly("steel", steel_t, (0, -width / 2), (blade * 0.75, -width / 2), (blade, 0),
                  (blade * 0.8, width / 2), (0, width / 2))]
    h_mat = str(rng.choice(["polyethylene", "rubber", "steel", "aluminium"]))
    prims.append(rect(h_mat, 1.4 if h_mat in ("polyethylene", "rubber") else 0.4,
                      -handle / 2, 0, handle, width * 1.2, rnd=True))
    if rng.random() < 0.5:  # tang and rivets show through a plastic handle
        prims.append(rect("steel", steel_t, -handle / 2, 0, handle * 0.9, width * 0.5))
        prims += [ell("brass", 1.2, -handle * f, 0, 0.4, 0.4, rnd=False) for f in (0.25, 0.75)]
    return Shape(prims, (blade + handle) / 2 + 1, width, flat=True)


@family("narcotics")
def narcotics(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    n = 1 if ctx.small else int(rng.integers(1, 5))
    w, h = (rng.uniform(3, 7), rng.uniform(3, 6)) if ctx.small else (rng.uniform(8, 20),
                                                                       rng.uniform(6, 14))
    t = rng.uniform(0.3, 1.0) if ctx.flat or ctx.small else rng.uniform(1.0, 5.0)
    prims = []
    for i in range(n):  # taped, pressed packs side by side
        x = (i - (n - 1) / 2) * w * 0.9
        prims += [rect("cocaine", t, x, 0, w, h, rnd=rng.random() < 0.5),
                  rect("polyethylene", 0.05, x, 0, w + 0.3, h + 0.3)]
    return Shape(prims, n * w * 0.45 + 0.5, h / 2 + 0.2, flat=t < 1.2)


@family("lithium_battery")
def lithium_battery(rng: np.random.Generator, ctx: ShapeContext) -> Shape:
    kind = rng.choice(["cylindrical", "pouch", "coin"], p=[0.5, 0.3, 0.2])
    prims = []
    if kind == "cylindrical":  # 18650 / 21700 cells loose or as a pack
        dia, length = (1.8, 6.5) if rng.random() < 0.7 else (2.1, 7.0)
        n = 1 if ctx.small else int(rng.integers(1, 9))
        for i in range(n):
            y = (i - (n - 1) / 2) * dia * 1.05
            prims += [rect("li_cell", dia, 0, y, length, dia, rnd=True),
                      rect("steel", 0.05, 0, y, length, dia, rnd=True),
                      ell("steel", 0.4, length / 2, y, 0.4, dia * 0.5, rnd=False)]
        return Shape(prims, length / 2 + 0.5, n * dia * 0.55 + 0.2)
    if kind == "pouch":
        w, h = rng.uniform(3, 10), rng.uniform(4, 12)
        prims = [rect("li_cell", rng.uniform(0.4, 1.0), 0, 0, w, h),
                 rect("aluminium", 0.02, 0, 0, w + 0.2, h + 0.2),
                 rect("aluminium", 0.02, -w / 4, -h / 2 - 0.7, 0.6, 1.4),
                 rect("copper", 0.02, w / 4, -h / 2 - 0.7, 0.6, 1.4)]
        return Shape(prims, w / 2, h / 2 + 1.5, flat=True)
    n = 1 if ctx.small else int(rng.integers(1, 6))
    for i in range(n):  # coin cells: steel can, thin cell
        x = (i - (n - 1) / 2) * 2.3
        prims += [ell("steel", 0.06, x, 0, 2.0, 2.0, rnd=False),
                  ell("li_cell", 0.25, x, 0, 1.8, 1.8, rnd=False)]
    return Shape(prims, n * 1.2 + 0.2, 1.2, flat=True)
