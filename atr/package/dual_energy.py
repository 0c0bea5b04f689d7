"""Raw dual-energy scans: decoding the low/high pair and turning it into attenuation.

A dual-energy line scanner measures each pixel twice, behind a thin (low-energy) and a
thick (high-energy) detector layer, and exports both as 16-bit grey images. The vendor's
pseudo-colour picture is computed from these two; its palette differs by vendor, the
physics does not. The `dual_energy` input representation therefore feeds the model
the attenuation a = -ln(I / I_air) of each channel, which depends only on what lies in
the beam (a = sum of mu(E) * t over the materials), and the same for every vendor once
each channel is divided by its air reading (the flat-field every scanner runs).

Accepted containers (decode_dual_energy):
  * one 16-bit grey image of height 2H, low energy on top of high energy: ATR's own raw
    format (the simulator's `.raw.png`, and what `importer=dual_energy` writes);
  * a two-page 16-bit TIFF, page 0 low energy, page 1 high energy.
No torch here: serving imports this module.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageSequence

from atr.package.decode import ImageDecodeError, open_bounded

# Transmission is clipped here before the logarithm: a detector that reads 0 (fully
# absorbed, or a dead pixel) would give infinite attenuation. ln(1/1e-3) = 6.9, beyond
# ~25 mm of steel at typical parcel-scanner energies.
MIN_TRANSMISSION = 1e-3
# Air level of a channel when not configured: the most common value among the brightest
# tenth of the channel's pixels (histogram of AIR_BINS bins). Scans of parcels on a belt
# include air around the item, and the flat-field has made air uniform, so air is the
# brightest large plateau. Measured on HUMS: the 99.5th percentile reads hot pixels and
# the scan's border (51 486 on its knife scans, 50 111 on its benign ones), the plateau
# reads air (49 900 / 49 300); the difference would be a small class-dependent offset.
AIR_BRIGHT_QUANTILE = 0.90
AIR_BINS = 128
_WIDE_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class DualEnergyDecodeError(ImageDecodeError):
    """The input is not a low/high dual-energy scan this platform can read."""


def decode_dual_energy(data: bytes, *, max_pixels: int) -> np.ndarray:
    """Bytes of a dual-energy scan -> uint16 HxWx2 (channel 0 low, 1 high energy)."""
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) == 0:
        raise DualEnergyDecodeError("empty input (0 bytes)")
    img = open_bounded(data, max_pixels, DualEnergyDecodeError)
    height = img.size[1]
    try:
        pages = getattr(img, "n_frames", 1)
        if pages >= 2:
            frames = [_wide_gray(f.copy()) for _, f in zip(range(2), ImageSequence.Iterator(img),
                                                          strict=False)]
            low, high = frames
        else:
            stacked = _wide_gray(img)
            if stacked.shape[0] % 2:
                raise DualEnergyDecodeError(
                    f"a stacked low/high scan needs an even height (2H x W), got {height}"
                )
            half = stacked.shape[0] // 2
            low, high = stacked[:half], stacked[half:]
    except DualEnergyDecodeError:
        raise
    except Image.DecompressionBombError as e:  # a page past Pillow's own backstop
        raise DualEnergyDecodeError(f"image too large: {e}") from e
    except Exception as e:
        raise DualEnergyDecodeError(f"corrupt or truncated image data ({e})") from e
    if low.shape != high.shape or low.size == 0:
        raise DualEnergyDecodeError(
            f"low and high energy images differ in size ({low.shape} vs {high.shape})"
        )
    return np.ascontiguousarray(np.stack([low, high], axis=-1))


def _wide_gray(img: Image.Image) -> np.ndarray:
    if img.mode not in _WIDE_MODES:
        raise DualEnergyDecodeError(
            f"dual-energy channels must be 16-bit grey, got mode {img.mode} "
            "(a pseudo-colour or 8-bit image needs a pseudo_colour model)"
        )
    return np.clip(np.asarray(img, dtype=np.int64), 0, 65535).astype(np.uint16)


def air_levels(pair: np.ndarray, air_level: float | None) -> np.ndarray:
    """Per-channel air reading (2,): the configured level, or each channel's bright plateau."""
    if air_level is not None:
        return np.full(2, float(air_level), np.float64)
    flat = pair.reshape(-1, 2)
    step = max(1, flat.shape[0] // 65536)  # a strided sample keeps this cheap on big scans
    sample = flat[::step].astype(np.float64)
    return np.array([_plateau(sample[:, c]) for c in range(2)])


def _plateau(values: np.ndarray) -> float:
    lo, hi = float(np.quantile(values, AIR_BRIGHT_QUANTILE)), float(values.max())
    if hi - lo < 1.0:
        return max(hi, 1.0)
    counts, edges = np.histogram(values[values >= lo], bins=AIR_BINS, range=(lo, hi))
    k = int(np.argmax(counts))
    return max(float(edges[k] + edges[k + 1]) / 2.0, 1.0)


def attenuation(pair: np.ndarray, air_level: float | None = None) -> np.ndarray:
    """uint16 HxWx2 counts -> float32 HxWx2 attenuation -ln(I / I_air), >= 0 (air = 0)."""
    if pair.ndim != 3 or pair.shape[2] != 2:
        raise ValueError(f"expected an HxWx2 low/high array, got shape {pair.shape}")
    air = air_levels(pair, air_level)
    transmission = np.clip(pair.astype(np.float32) / air.astype(np.float32), MIN_TRANSMISSION, 1.0)
    return -np.log(transmission)


def display_gray(att: np.ndarray) -> np.ndarray:
    """float32 HxWx2 attenuation -> uint8 HxWx3 grey picture of the low-energy channel
    (what an operator's single-energy view shows; used for drift statistics and plots)."""
    gray = np.clip(np.exp(-att[..., 0]) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)
