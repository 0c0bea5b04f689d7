"""Decoding any image file a scanner or archive produces into uint8 RGB.

The pseudo-colour representation's first step (atr.package.preprocess). No torch here:
serving imports this module.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 50_000_000
# The bound is per call (`max_pixels`, from the header, before any pixel is decoded).
# Pillow's process-wide guard (Image.MAX_IMAGE_PIXELS, ~89 MP: a warning, twice that: an
# error) is left as Pillow sets it, a backstop under ours: a default bound of 50 MP never
# reaches it, and should it fire (a bound configured above it), the scan is refused as
# too large like any other, never as unreadable.

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_WIDE_GRAY_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class ImageDecodeError(ValueError):
    """The input is not an image this platform can read (the reason says why)."""


def decode_image(data: bytes | str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode bytes or a file into uint8 HxWx3 RGB.

    - 8-bit gray (L, 1) is replicated into three channels.
    - 16-bit gray is divided by 257 (0..65535 -> 0..255) on the full range, never
      stretched per image: in an X-ray image the grey level is attenuation, and a
      per-image stretch would make a thin envelope look as dense as a steel block.
    - Alpha (RGBA, LA, palette with transparency) is composited on white, because
      white means "no attenuation": transparent pixels are empty space.
    - EXIF orientation is applied so the array matches what a viewer shows.
    """
    if isinstance(data, str | Path):
        path = Path(data)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ImageDecodeError(f"{path}: cannot read file ({e.strerror or e})") from e
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImageDecodeError(f"expected bytes or a path, got {type(data).__name__}")
    if len(data) == 0:
        raise ImageDecodeError("empty input (0 bytes)")
    img = open_bounded(data, max_pixels, ImageDecodeError)
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as e:
        raise ImageDecodeError(f"image too large: {e}") from e
    except Exception as e:
        raise ImageDecodeError(f"corrupt or truncated {img.format or 'image'} data ({e})") from e
    return _to_rgb(img)


def open_bounded(data: bytes | bytearray | memoryview, max_pixels: int,
                 error: type[ImageDecodeError]) -> Image.Image:
    """The image opened lazily (header only), refused with `error` when its header
    announces more than `max_pixels` pixels, or none. Messages starting "image too large"
    are the service's image_too_large."""
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:  # past Pillow's own backstop
        raise error(f"image too large: {e}") from e
    except UnidentifiedImageError as e:
        raise error("not a recognised image format") from e
    except Exception as e:  # Pillow plugins raise a zoo of types on garbage headers
        raise error(f"corrupt image header ({e})") from e
    width, height = img.size
    if width <= 0 or height <= 0:
        raise error(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise error(f"image too large: {width}x{height} = {width * height} pixels > limit "
                    f"{max_pixels}")
    return img


def _to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in _WIDE_GRAY_MODES:
        # Mode "I" is how some Pillow versions open 16-bit PNGs; clip guards 32-bit TIFFs.
        wide = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)  # == round(v / 257)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("L", "1"):
        gray = np.asarray(img.convert("L"), dtype=np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in _ALPHA_MODES:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint16)
        alpha = rgba[:, :, 3:4]
        rgb = (rgba[:, :, :3] * alpha + 255 * (255 - alpha) + 127) // 255
        return np.ascontiguousarray(rgb.astype(np.uint8))
    if mode == "F":
        raise ImageDecodeError("floating-point images (mode F) are not supported: export as 16-bit")
    if mode != "RGB":
        img = img.convert("RGB")  # CMYK, YCbCr, LAB...
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
