"""One path from any image file to the model's input tensor.

Training (the DataModule) and serving (the sorting line) both call
`decode_image` then `PreprocessSpec.prepare`, so the model never sees an
image mapped differently in production than in training. No torch here:
serving imports this module.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 50_000_000
# Pillow's own bomb guard must not fire before ours (ours has the clearer message).
Image.MAX_IMAGE_PIXELS = None

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
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise ImageDecodeError("not a recognised image format") from e
    except Exception as e:  # Pillow plugins raise a zoo of types on garbage headers
        raise ImageDecodeError(f"corrupt image header ({e})") from e
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"image too large: {width}x{height} = {width * height} pixels > limit {max_pixels}"
        )
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except Exception as e:
        raise ImageDecodeError(f"corrupt or truncated {img.format or 'image'} data ({e})") from e
    return _to_rgb(img)


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


_RESIZE_MODES = ("letterbox", "stretch")
_FILTERS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "area": Image.Resampling.BOX,
}


@dataclass(frozen=True)
class PreprocessSpec:
    """How a decoded RGB image becomes the model's float32 3xSxS input.

    Saved as `preprocess.json` in the model package; serving rebuilds it from
    there, so a model always runs with the preprocessing it was trained with.
    """

    input_size: int = 224
    resize: str = "letterbox"  # letterbox: aspect kept, padded; stretch: aspect lost
    interpolation: str = "bilinear"  # fixed filter: identical pixels in training and serving
    pad_value: int = 255  # white = no attenuation, so padding reads as empty belt
    # ImageNet statistics (RGB order): backbones are ImageNet-shaped even when not pretrained.
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channel_order: str = "RGB"
    # Documentation of decode_image's mapping, recorded so a package states it.
    gray_mapping: str = "replicate 8-bit gray into R, G and B"
    uint16_mapping: str = "divide by 257 on the full range (no per-image stretch)"
    alpha_mapping: str = "composite on white (white = no attenuation)"
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.input_size < 8:
            raise ValueError(f"input_size {self.input_size} too small (>= 8)")
        if self.resize not in _RESIZE_MODES:
            raise ValueError(f"resize {self.resize!r} not one of {_RESIZE_MODES}")
        if self.interpolation not in _FILTERS:
            raise ValueError(f"interpolation {self.interpolation!r} not one of {sorted(_FILTERS)}")
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order {self.channel_order!r} not RGB or BGR")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need 3 values each, std > 0")
        if not 0 <= self.pad_value <= 255:
            raise ValueError(f"pad_value {self.pad_value} not in 0..255")
        # Tuples even when built from JSON lists, so specs compare equal.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    # --- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> PreprocessSpec:
        raw = json.loads(text) if isinstance(text, str) else dict(text)
        unknown = sorted(set(raw) - {f.name for f in fields(cls)})
        if unknown:
            # A field we do not understand could change the pixels: refuse, don't guess.
            raise ValueError(f"preprocess spec: unknown field(s) {unknown}")
        return cls(**raw)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> PreprocessSpec:
        return cls.from_json(Path(path).read_text())

    # --- the transform -------------------------------------------------------------
    def geometry(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(new_w, new_h, pad_x, pad_y): where an HxW image lands in the SxS input
        (lets callers map boxes or heat-maps between the two frames)."""
        s = self.input_size
        if self.resize == "stretch":
            return s, s, 0, 0
        scale = s / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        return new_w, new_h, (s - new_w) // 2, (s - new_h) // 2

    def resize_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 -> uint8 SxSx3 (letterboxed or stretched)."""
        _check_rgb(rgb)
        s = self.input_size
        h, w = rgb.shape[:2]
        img = Image.fromarray(rgb)
        flt = _FILTERS[self.interpolation]
        if self.resize == "stretch":
            return np.asarray(img.resize((s, s), flt))
        new_w, new_h, px, py = self.geometry(h, w)
        canvas = Image.new("RGB", (s, s), (self.pad_value,) * 3)
        canvas.paste(img.resize((new_w, new_h), flt) if (new_w, new_h) != (w, h) else img, (px, py))
        return np.asarray(canvas)

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 RGB -> float32 3xSxS, normalised."""
        return self._normalise(self.resize_rgb(rgb)[None])[0]

    def prepare_batch(self, images: list[np.ndarray]) -> np.ndarray:
        """List of uint8 HxWx3 RGB -> float32 Nx3xSxS."""
        if not images:
            return np.zeros((0, 3, self.input_size, self.input_size), np.float32)
        return self._normalise(np.stack([self.resize_rgb(im) for im in images]))

    def _normalise(self, batch: np.ndarray) -> np.ndarray:
        # (x/255 - mean)/std folded into one multiply-add per pixel.
        std = np.asarray(self.std, np.float32)
        scale = 1.0 / (255.0 * std)
        bias = -np.asarray(self.mean, np.float32) / std
        out = batch.astype(np.float32) * scale + bias  # N,S,S,3
        if self.channel_order == "BGR":
            out = out[..., ::-1]
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _check_rgb(rgb: np.ndarray) -> None:
    if (
        not isinstance(rgb, np.ndarray)
        or rgb.dtype != np.uint8
        or rgb.ndim != 3
        or rgb.shape[2] != 3
    ):
        desc = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"expected uint8 HxWx3 RGB (use decode_image), got {desc}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"empty image {rgb.shape}")
