"""Cheap per-image statistics of a pseudo-colour X-ray image, for drift monitoring.

A new scanner, an ageing detector or a seasonal change of goods shows first in
these numbers (brightness, how much is dark, the mix of organic / inorganic /
metal colours), long before labels arrive. They must stay cheap: serving
computes them for every item on the line.
"""

from __future__ import annotations

import numpy as np

# Field order is the column order of reference.parquet and the prediction store.
STAT_NAMES = (
    "brightness",
    "brightness_std",
    "dark_fraction",
    "object_fraction",
    "orange_share",
    "green_share",
    "blue_share",
)

# Stats are computed on at most this many pixels a side: a strided view (every k-th pixel,
# never an average, so colours are not mixed) keeps the cost flat whatever the scanner's
# resolution. 64 a side is ~4k sampled pixels: each fraction has a sampling error under
# 0.01, far below the drift a monitor acts on, at ~1/16 of the cost of 256 a side (serving
# computes this for every item; the evaluation stage computes the reference with this same
# function, so both sides of the drift comparison sample alike).
_MAX_SIDE = 64
# Gray level under which a pixel counts as dark (thick or dense material).
_DARK = 64
# Pixels brighter than this with little saturation are the empty belt / air.
_BACKGROUND = 235
# Minimal chroma (max - min channel) for a pixel to carry a material colour.
_MIN_CHROMA = 24


def image_stats(rgb: np.ndarray) -> dict[str, float]:
    """Statistics of one uint8 HxWx3 RGB image (values in [0, 1] except std, also [0, 1]).

    Colour shares are fractions of the *object* pixels (not background), so a
    small parcel on a large belt reads the same as a large one: orange for
    organic material, green for inorganic / light metal, blue for dense metal
    (the display convention of dual-energy scanners).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image_stats expects an HxWx3 RGB array, got shape {rgb.shape}")
    step = max(1, -(-max(rgb.shape[:2]) // _MAX_SIDE))  # ceil without floats
    view = rgb[::step, ::step]
    r8, g8, b8 = view[..., 0], view[..., 1], view[..., 2]
    hi8 = np.maximum(np.maximum(r8, g8), b8)  # uint8, elementwise: no per-pixel reduction
    chroma8 = hi8 - np.minimum(np.minimum(r8, g8), b8)  # >= 0, so no uint8 wrap-around
    r, g, b = (c.astype(np.float32) for c in (r8, g8, b8))
    gray = 0.299 * r + 0.587 * g + 0.114 * b
    coloured = chroma8 >= _MIN_CHROMA
    obj = (gray < _BACKGROUND) | coloured
    hi, chroma = hi8.astype(np.float32), chroma8.astype(np.float32)
    n = gray.size
    n_obj = max(int(np.count_nonzero(obj)), 1)
    # Hue only for the coloured pixels (the only ones the shares count).
    hue = _hue_degrees(r[coloured], g[coloured], b[coloured], hi[coloured], chroma[coloured])
    orange = np.count_nonzero((hue >= 10) & (hue < 60))
    green = np.count_nonzero((hue >= 60) & (hue < 170))
    blue = np.count_nonzero((hue >= 170) & (hue < 270))
    return {
        "brightness": float(gray.mean() / 255.0),
        "brightness_std": float(gray.std() / 255.0),
        "dark_fraction": float(np.count_nonzero(gray < _DARK) / n),
        "object_fraction": float(np.count_nonzero(obj) / n),
        "orange_share": float(orange / n_obj),
        "green_share": float(green / n_obj),
        "blue_share": float(blue / n_obj),
    }


def _hue_degrees(
    r: np.ndarray, g: np.ndarray, b: np.ndarray, hi: np.ndarray, chroma: np.ndarray
) -> np.ndarray:
    """HSV hue in degrees [0, 360); 0 where the pixel is gray (chroma 0)."""
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(
        hi == r,
        ((g - b) / safe) % 6.0,
        np.where(hi == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    return np.where(chroma > 0, hue * 60.0, 0.0)
