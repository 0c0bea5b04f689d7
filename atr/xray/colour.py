"""Conventional dual-energy pseudo-colour, computed from the raw pair only.

Hue comes from the ratio of low- to high-channel log attenuation (a proxy for
effective Z): organic (Z <= 10) orange, inorganic / light metal green, dense
metal blue. Brightness falls with attenuation (darker = thicker/denser) and
saturation fades to white where nothing attenuates. The ratio of a material
drifts with thickness (beam hardening), so a palette may carry per-scanner
reference curves: the ratio of polyethylene, aluminium and steel as a
function of high-channel attenuation, like a real scanner's calibration.
Everything is baked into a 2-D lookup table indexed by the quantised
attenuations, so colouring an image is two gathers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np

LEVELS = 512  # LUT side
A_MAX = 10.0  # largest log attenuation resolved (transmission 4.5e-5)
HUE_ANCHORS_DEG = (28.0, 110.0, 220.0)  # orange, green, blue
# Reference attenuation grid for calibration curves (high channel, -ln T).
CURVE_A_HIGH = (0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0)


@dataclass(frozen=True)
class Palette:
    name: str = "classic"
    saturation: float = 1.0
    brightness_gamma: float = 0.8
    hue_shift_deg: float = 0.0
    # low/high ratio of the organic, inorganic and metal references: one value
    # (any thickness) or one per CURVE_A_HIGH point (calibrated per scanner).
    ratio_organic: tuple[float, ...] = (1.15,)
    ratio_inorganic: tuple[float, ...] = (1.55,)
    ratio_metal: tuple[float, ...] = (2.0,)

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> Palette:
        params = dict(params or {})
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in params.items() if k in names}
        for k in ("ratio_organic", "ratio_inorganic", "ratio_metal"):
            if k in kwargs:
                kwargs[k] = tuple(float(x) for x in np.atleast_1d(kwargs[k]))
        return cls(**kwargs)


def _curve(values: tuple[float, ...], a_high: np.ndarray) -> np.ndarray:
    if len(values) == 1:
        return np.full_like(a_high, values[0])
    return np.interp(a_high, CURVE_A_HIGH, values)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    h6 = (h % 360.0) / 60.0
    i = np.floor(h6).astype(int) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)


def _levels() -> np.ndarray:
    # sqrt spacing: fine steps where attenuation is small and ratios are subtle.
    return (np.linspace(0, 1, LEVELS) ** 2 * A_MAX).astype(np.float64)


def zeff_position(a_low: np.ndarray, a_high: np.ndarray, palette: Palette) -> np.ndarray:
    """0 at the organic reference, 1 at inorganic, 2 at metal (clipped to [0, 2])."""
    ratio = np.log(np.maximum(a_low, 1e-6) / np.maximum(a_high, 1e-6))
    ro, ri, rm = (np.log(_curve(getattr(palette, k), a_high))
                  for k in ("ratio_organic", "ratio_inorganic", "ratio_metal"))
    lower = (ratio - ro) / np.maximum(ri - ro, 1e-6)
    upper = 1.0 + (ratio - ri) / np.maximum(rm - ri, 1e-6)
    return np.clip(np.where(ratio < ri, lower, upper), 0.0, 2.0)


@lru_cache(maxsize=16)
def colour_lut(palette: Palette) -> np.ndarray:
    """(LEVELS, LEVELS, 3) uint8 indexed by [low level, high level]."""
    a = _levels()
    a_low, a_high = np.meshgrid(a, a, indexing="ij")
    pos = zeff_position(a_low, a_high, palette)
    hue = np.interp(pos, [0, 1, 2], HUE_ANCHORS_DEG) + palette.hue_shift_deg * (pos - 1.0)
    # Fade to white below ~2 % attenuation: there the ratio is mostly noise.
    sat = palette.saturation * (1.0 - np.exp(-np.maximum(a_high - 0.02, 0.0) / 0.12))
    val = np.clip(np.exp(-0.6 * palette.brightness_gamma * (a_low + a_high) / 2), 0.03, 1.0)
    rgb = _hsv_to_rgb(hue, np.clip(sat, 0, 1), val)
    lut = np.round(rgb * 255).astype(np.uint8)
    lut.setflags(write=False)
    return lut


@lru_cache(maxsize=1)
def _quantiser() -> np.ndarray:
    """uint16 raw value -> LUT level (log attenuation on the sqrt grid)."""
    v = np.arange(65536, dtype=np.float64)
    a = -np.log(np.maximum(v, 0.5) / 65535.0)
    level = np.round(np.sqrt(np.clip(a, 0, A_MAX) / A_MAX) * (LEVELS - 1))
    q = level.astype(np.uint16)
    q.setflags(write=False)
    return q


def pseudo_colour(low: np.ndarray, high: np.ndarray,
                  palette: Palette | str | dict | None = None) -> np.ndarray:
    """Raw uint16 pair (65535 = no attenuation) -> RGB uint8 HxWx3."""
    if not isinstance(palette, Palette):
        palette = Palette.from_params({"name": palette} if isinstance(palette, str) else palette)
    q = _quantiser()
    return colour_lut(palette)[q[low], q[high]]
