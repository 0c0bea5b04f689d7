"""One path from any scan to the model's input tensor, per input representation.

Training (the DataModule), evaluation and serving all call `PreprocessSpec.decode`
then `PreprocessSpec.prepare_batch`, so the model never sees a scan mapped differently
in production than in training. The spec is saved with every model (`preprocess.json`).

Two input representations (`representation`):
  * `pseudo_colour` (default): any picture a scanner or archive gives -- a vendor's
    pseudo-colour RGB, 8/16-bit single-energy grey, RGBA -- decoded to uint8 RGB
    (atr.package.decode). Works for every source, but the palette is the vendor's.
  * `dual_energy`: the raw low/high channels as attenuation -ln(I/I_air)
    (atr.package.dual_energy): closer to physics, and the same for every vendor.
    The model sees [a_low, a_high, a_low - a_high]; the difference carries the
    material (effective Z), as the hue does in pseudo-colour.
Geometry (`resize`): `letterbox` fits the scan into the SxS canvas (aspect kept),
`stretch` ignores the aspect, `pitch` keeps the scanner's pixel pitch (times
`pixel_scale`), pads with air and only shrinks a scan too big for the canvas. Real
scans are 600-2 700 px wide; blowing a small scan up to the canvas, as letterbox does,
hands the model the scan's size, which in public sets often differs by class.
No torch here: serving imports this module.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from atr.package.decode import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image
from atr.package.dual_energy import attenuation, decode_dual_energy, display_gray

__all__ = ["DEFAULT_MAX_PIXELS", "ImageDecodeError", "PreprocessSpec", "decode_image"]

REPRESENTATIONS = ("pseudo_colour", "dual_energy")
_RESIZE_MODES = ("letterbox", "stretch", "pitch")
_FILTERS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "area": Image.Resampling.BOX,
}


@dataclass(frozen=True)
class PreprocessSpec:
    """How a scan becomes the model's float32 3xSxS input.

    Saved as `preprocess.json` in the model package; serving rebuilds it from
    there, so a model always runs with the preprocessing it was trained with.
    """

    input_size: int = 224
    resize: str = "letterbox"  # letterbox | stretch | pitch (see the module docstring)
    interpolation: str = "bilinear"  # fixed filter: identical pixels in training and serving
    pad_value: int = 255  # pseudo-colour padding: white = no attenuation (empty belt)
    # Per model channel: (x - mean) / std, x = RGB / 255 or the attenuation channels.
    # ImageNet statistics by default: backbones are ImageNet-shaped even when not pretrained.
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channel_order: str = "RGB"
    # Documentation of decode_image's mapping, recorded so a package states it.
    gray_mapping: str = "replicate 8-bit gray into R, G and B"
    uint16_mapping: str = "divide by 257 on the full range (no per-image stretch)"
    alpha_mapping: str = "composite on white (white = no attenuation)"
    max_pixels: int = DEFAULT_MAX_PIXELS
    representation: str = "pseudo_colour"
    # dual_energy: the detector's air reading; null = measured per scan (its bright plateau).
    air_level: float | None = None
    pixel_scale: float = 1.0  # resize=pitch: scan pixels -> model pixels

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
        if self.representation not in REPRESENTATIONS:
            raise ValueError(
                f"representation {self.representation!r} not one of {REPRESENTATIONS}"
            )
        if self.air_level is not None and not self.air_level > 0:
            raise ValueError(f"air_level {self.air_level} must be > 0 (or null: measured)")
        if not self.pixel_scale > 0:
            raise ValueError(f"pixel_scale {self.pixel_scale} must be > 0")
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

    # --- decoding: bytes -> the representation's array ---------------------------------
    @property
    def dual_energy(self) -> bool:
        return self.representation == "dual_energy"

    @property
    def input_column(self) -> str:
        """The manifest column holding what this representation reads (docs/CONTRACTS.md)."""
        return "raw" if self.dual_energy else "image"

    def decode(self, data: bytes | str | Path, *, max_pixels: int | None = None) -> np.ndarray:
        """A scan -> uint8 HxWx3 RGB (pseudo_colour) or float32 HxWx2 attenuation
        (dual_energy). Raises ImageDecodeError naming the problem."""
        limit = self.max_pixels if max_pixels is None else max_pixels
        if not self.dual_energy:
            return decode_image(data, max_pixels=limit)
        if isinstance(data, str | Path):
            try:
                data = Path(data).read_bytes()
            except OSError as e:
                raise ImageDecodeError(f"{data}: cannot read file ({e.strerror or e})") from e
        return attenuation(decode_dual_energy(data, max_pixels=limit), self.air_level)

    def display(self, array: np.ndarray) -> np.ndarray:
        """The decoded array as uint8 RGB for people and image statistics."""
        return display_gray(array) if self.dual_energy else array

    def blank(self) -> np.ndarray:
        """An empty belt (air only) at the canvas size, in the decoded representation."""
        s = self.input_size
        if self.dual_energy:
            return np.zeros((s, s, 2), np.float32)
        return np.full((s, s, 3), 255, np.uint8)

    # --- the transform -------------------------------------------------------------
    def geometry(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(new_w, new_h, pad_x, pad_y): where an HxW image lands in the SxS input
        (lets callers map boxes or heat-maps between the two frames)."""
        s = self.input_size
        if self.resize == "stretch":
            return s, s, 0, 0
        scale = s / max(height, width)
        if self.resize == "pitch":
            scale = min(self.pixel_scale, scale)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        return new_w, new_h, (s - new_w) // 2, (s - new_h) // 2

    def resize_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 -> uint8 SxSx3 (letterboxed, stretched or at pitch)."""
        _check_rgb(rgb)
        s = self.input_size
        h, w = rgb.shape[:2]
        img = Image.fromarray(rgb)
        flt = _FILTERS[self.interpolation]
        if self.resize == "stretch":
            return np.asarray(img.resize((s, s), flt))
        new_w, new_h, px, py = self.geometry(h, w)
        if (new_w, new_h) == (s, s):  # fills the canvas (a square scan): no padding to paste on
            return np.asarray(img.resize((s, s), flt)) if (w, h) != (s, s) else rgb.copy()
        canvas = Image.new("RGB", (s, s), (self.pad_value,) * 3)
        canvas.paste(img.resize((new_w, new_h), flt) if (new_w, new_h) != (w, h) else img, (px, py))
        return np.asarray(canvas)

    def resize_attenuation(self, att: np.ndarray) -> np.ndarray:
        """float32 HxWx2 -> float32 SxSx2; the padding is air (attenuation 0)."""
        if att.dtype != np.float32 or att.ndim != 3 or att.shape[2] != 2 or 0 in att.shape:
            raise ValueError(f"expected float32 HxWx2 attenuation, got {att.dtype} {att.shape}")
        s, (h, w) = self.input_size, att.shape[:2]
        new_w, new_h, px, py = self.geometry(h, w)
        flt = _FILTERS[self.interpolation]
        out = np.zeros((s, s, 2), np.float32)
        for c in range(2):
            channel = np.ascontiguousarray(att[:, :, c])
            if (new_w, new_h) != (w, h):
                channel = np.asarray(Image.fromarray(channel, mode="F").resize((new_w, new_h), flt))
            out[py:py + new_h, px:px + new_w, c] = channel
        return out

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One decoded scan -> float32 3xSxS, normalised."""
        return self.prepare_batch([image])[0]

    def prepare_batch(self, images: list[np.ndarray]) -> np.ndarray:
        """Decoded scans (see `decode`) -> float32 Nx3xSxS."""
        if not images:
            return np.zeros((0, 3, self.input_size, self.input_size), np.float32)
        if self.dual_energy:
            att = np.stack([self.resize_attenuation(a) for a in images])
            low, high = att[..., 0], att[..., 1]
            return self._normalise(np.stack([low, high, low - high], axis=-1), unit=1.0)
        return self._normalise(np.stack([self.resize_rgb(im) for im in images]), unit=255.0)

    def _normalise(self, batch: np.ndarray, unit: float) -> np.ndarray:
        # (x / unit - mean) / std folded into one multiply-add per pixel.
        std = np.asarray(self.std, np.float32)
        scale = 1.0 / (unit * std)
        offset = -np.asarray(self.mean, np.float32) / std
        if batch.dtype == np.uint8:
            # The same float32 multiply-add on the 256 levels once, then a table look-up per
            # pixel straight into the channel-first layout: bit-identical, 2.8x cheaper.
            lut = np.arange(256, dtype=np.float32)[:, None] * scale + offset
            n, h, w, _ = batch.shape
            planes = np.empty((n, 3, h, w), np.float32)
            for k in range(3):
                c = 2 - k if self.channel_order == "BGR" else k
                np.take(lut[:, c], batch[..., c], out=planes[:, k])
            return planes
        out = batch.astype(np.float32) * scale + offset
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
