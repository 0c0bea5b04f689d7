"""Per-scanner colour calibration: reference ratio curves from the scanner's own physics.

Real scanners are calibrated with step wedges of known materials; here the
wedges are computed. The curves feed the palette so the same material gets
the same hue on every scanner profile and at every thickness.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np

from atr.xray.beam_hardening import physics_tables
from atr.xray.colour import CURVE_A_HIGH, Palette
from atr.xray.scanner_profile import ScannerProfile

# Cellulose, not polyethylene, anchors "organic": post is mostly paper and card,
# and polyethylene (lower Z) then still lands on the orange side.
REFERENCES = {"ratio_organic": "paper", "ratio_inorganic": "aluminium",
              "ratio_metal": "steel"}


def ratio_curve(profile: ScannerProfile, material: str) -> tuple[float, ...]:
    """low/high log-attenuation ratio of `material` at each CURVE_A_HIGH point."""
    tables = physics_tables(profile)
    thickness = np.geomspace(1e-3, 200.0, 400).astype(np.float32)
    a_low, a_high = tables.attenuation(material, thickness).astype(np.float64)
    ratio = a_low / np.maximum(a_high, 1e-9)
    ok = a_high > 1e-4
    # Beyond the wedge's reach (a_high saturates) hold the last ratio.
    return tuple(float(r) for r in np.interp(CURVE_A_HIGH, a_high[ok], ratio[ok]))


@lru_cache(maxsize=16)
def _calibrated(profile_key: tuple, palette: Palette, profile: ScannerProfile) -> Palette:
    curves = {k: ratio_curve(profile, m) for k, m in REFERENCES.items()}
    return replace(palette, **curves)


def calibrated_palette(profile: ScannerProfile) -> Palette:
    """The profile's palette with ratio curves calibrated unless given explicitly in the yaml."""
    params = profile.palette_params
    palette = Palette.from_params(params)
    if any(k in params for k in REFERENCES):
        return palette
    return _calibrated(profile.physics_key, palette, profile)
