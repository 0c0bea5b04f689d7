"""Materials of postal items and their linear attenuation coefficients (xraydb).

Densities are bulk densities of the item as it sits in a parcel (a folded
jumper is mostly air), so a thickness in cm of a material is "cm of that
stuff as packed". Formulas of composites (lithium cell, PCB) are molar
mixtures chosen to reproduce their mass fractions and effective Z.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from atr.xray.cache import cached_array


@dataclass(frozen=True)
class Material:
    name: str
    formula: str
    density: float  # g/cm^3
    group: str  # organic | inorganic | metal: the expected colour class


# Order matters: it is the axis of the thickness stack. Append only.
MATERIALS: tuple[Material, ...] = (
    Material("paper", "C6H10O5", 0.80, "organic"),  # cellulose sheets, pressed
    Material("cardboard", "C6H10O5", 0.20, "organic"),  # corrugated: mostly air
    Material("textile", "C6H10O5", 0.35, "organic"),  # cotton, folded clothing
    Material("polyethylene", "C2H4", 0.94, "organic"),
    Material("pet", "C10H8O4", 1.38, "organic"),
    Material("rubber", "C5H8", 1.10, "organic"),
    Material("water", "H2O", 1.00, "organic"),  # liquids, cosmetics, wet food
    Material("sugar", "C12H22O11", 0.90, "organic"),  # food powder: a narcotics confuser
    Material("cocaine", "C17H22ClNO4", 1.15, "organic"),  # narcotics powder, pressed
    Material("glass", "SiO2Na0.3Ca0.1", 2.50, "inorganic"),
    Material("pcb", "SiO2C2H2Cu0.15", 1.90, "inorganic"),  # FR4 + copper traces
    Material("aluminium", "Al", 2.70, "inorganic"),
    Material("li_cell", "LiCoO2C4Cu0.4Al0.5H2", 2.60, "metal"),  # LiCoO2/graphite/foils
    Material("steel", "Fe", 7.87, "metal"),
    Material("brass", "Cu0.65Zn0.35", 8.50, "metal"),
    Material("copper", "Cu", 8.96, "metal"),
    Material("silver", "Ag", 10.49, "metal"),
    Material("lead", "Pb", 11.34, "metal"),
)
# Detector and filter materials: not scene materials, same table machinery.
DETECTOR_MATERIALS: tuple[Material, ...] = (
    Material("csi", "CsI", 4.51, "detector"),
    Material("gos", "Gd2O2S", 7.32, "detector"),
    Material("cu_filter", "Cu", 8.96, "detector"),
    Material("al_filter", "Al", 2.70, "detector"),
)
MATERIAL_NAMES: tuple[str, ...] = tuple(m.name for m in MATERIALS)
MATERIAL_INDEX: dict[str, int] = {m.name: i for i, m in enumerate(MATERIALS)}
_BY_NAME: dict[str, Material] = {m.name: m for m in (*MATERIALS, *DETECTOR_MATERIALS)}


def material(name: str) -> Material:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown material {name!r}; known: {', '.join(_BY_NAME)}") from None


def _compute_mu(mats: tuple[Material, ...], energies_kev: tuple[float, ...]) -> np.ndarray:
    import xraydb

    e_ev = np.asarray(energies_kev, dtype=np.float64) * 1000.0
    rows = [np.atleast_1d(xraydb.material_mu(m.formula, e_ev, density=m.density)) for m in mats]
    return np.asarray(rows, dtype=np.float32)


@lru_cache(maxsize=64)
def mu_table(names: tuple[str, ...], energies_kev: tuple[float, ...]) -> np.ndarray:
    """Linear attenuation mu[m, e] in 1/cm (float32), memory + disk cached."""
    import xraydb

    mats = tuple(material(n) for n in names)
    spec = {
        "xraydb": xraydb.__version__,
        "materials": [(m.formula, m.density) for m in mats],
        "energies": [round(e, 6) for e in energies_kev],
    }
    table = cached_array("mu", spec, lambda: _compute_mu(mats, energies_kev))
    table.setflags(write=False)
    return table
