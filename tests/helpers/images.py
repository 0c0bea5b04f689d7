"""Uploads the tests send: plain PNGs and ATR's raw dual-energy containers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(colour: tuple[int, int, int] = (255, 140, 0), size: tuple[int, int] = (48, 40)
              ) -> bytes:
    """A flat-colour RGB PNG (orange by default: the simulator's paper colour)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def stacked_png(low: np.ndarray, high: np.ndarray) -> bytes:
    """ATR's raw format: one 16-bit grey PNG, low energy above high energy."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.vstack([low, high]).astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def two_page_tiff(low: np.ndarray, high: np.ndarray) -> bytes:
    """The other raw container: a two-page 16-bit TIFF (low energy first)."""
    from PIL import Image

    buf = io.BytesIO()
    pages = [Image.fromarray(a.astype(np.uint16)) for a in (low, high)]
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    return buf.getvalue()


# The shapes real scanners and public datasets deliver (kind -> (width, height)).
IMAGE_KINDS = {
    "gray8": (320, 300),
    "gray16": (300, 340),
    "rgb_jpeg": (400, 310),
    "rgba": (310, 320),
    "wide": (3000, 300),
}


def _pixels(kind: str, width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(len(kind))
    if kind == "gray8":
        return Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8))
    if kind == "gray16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if kind == "rgba":
        return Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8))
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def make_image(path: Path, kind: str) -> Path:
    """Write an image of `kind` (IMAGE_KINDS) at `path`; the suffix is forced to fit."""
    width, height = IMAGE_KINDS[kind]
    path = path.with_suffix(".jpg" if kind == "rgb_jpeg" else ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    _pixels(kind, width, height).save(path)
    return path
