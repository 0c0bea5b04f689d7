"""Training augmentations for pseudo-colour X-ray images (albumentations, uint8 RGB in and out).

X-ray physics sets the rules. In the pseudo-colour display the hue encodes the
material (organic orange, inorganic green, metal blue) and the darkness encodes
thickness, so:
  * no hue / saturation / colour jitter: it would turn a knife's blue into an
    organic orange and teach the model to ignore the one signal that matters;
  * brightness and contrast change only as a scanner's detector gain or an
    object's thickness would: in the attenuation domain a = -log(I/I0), where
    scaling a by g is a thicker or thinner object and adding b is a detector
    gain change. Both keep each channel's order, so the hue class survives;
  * geometry is free (bags lie any way round on the belt): flips, 90 degree
    turns, small affine moves with the empty-belt white as border fill;
  * small sensor noise and blur (focal spot, belt motion).

The `dual_energy` representation (float32 HxWx2 attenuation, air = 0) takes the same
steps in its own units: the gain step scales and shifts the attenuation directly, the
border fill is 0 (air), and the noise is drawn per detector layer, as each layer's
photon noise is its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import albumentations as A
import cv2
import numpy as np

# Pixel value of "no attenuation" (empty belt) in the pseudo-colour display.
AIR = 255
# ... and in the dual-energy representation (attenuation of air).
AIR_ATTENUATION = 0.0


class AttenuationGain(A.ImageOnlyTransform):
    """Scale and shift the attenuation a = -log(v / 256) of every channel alike.

    v' = 256 * exp(-(g * a + b)) - 0.5 which is (v/256)^g * exp(-b) per channel:
    g > 1 looks like a thicker object, b > 0 like a lower detector gain.
    Applied through a 256-entry look-up table, so it costs one cv2.LUT call.
    """

    def __init__(
        self,
        gain: tuple[float, float] = (0.8, 1.25),
        offset: tuple[float, float] = (-0.05, 0.05),
        p: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        self.gain = (float(gain[0]), float(gain[1]))
        self.offset = (float(offset[0]), float(offset[1]))

    def get_params(self) -> dict[str, float]:
        # Gain is drawn log-uniformly so that 0.8 and 1.25 are equally likely.
        lo, hi = np.log(self.gain[0]), np.log(self.gain[1])
        return {
            "g": float(np.exp(self.py_random.uniform(lo, hi))),
            "b": self.py_random.uniform(*self.offset),
        }

    def apply(self, img: np.ndarray, g: float = 1.0, b: float = 0.0, **params: Any) -> np.ndarray:
        if img.dtype == np.float32:  # dual-energy attenuation: the mapping itself
            return np.maximum(img * np.float32(g) + np.float32(b), 0.0).astype(np.float32)
        return cv2.LUT(img, attenuation_lut(g, b))

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("gain", "offset")


def attenuation_lut(g: float, b: float) -> np.ndarray:
    """uint8 look-up table for attenuation a -> g * a + b (v=255 maps to itself when b=0)."""
    v = np.arange(256, dtype=np.float64) + 0.5  # +0.5 keeps log finite at v=0
    a = -np.log(v / 256.0)
    out = 256.0 * np.exp(-(g * a + b)) - 0.5
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class LayerNoise(A.ImageOnlyTransform):
    """Gaussian noise on float32 attenuation, drawn independently per detector layer."""

    def __init__(self, std: tuple[float, float] = (0.01, 0.03), p: float = 0.5) -> None:
        super().__init__(p=p)
        self.std = (float(std[0]), float(std[1]))

    def get_params(self) -> dict[str, float]:
        return {"sigma": self.py_random.uniform(*self.std),
                "seed": self.py_random.randrange(2**31)}

    def apply(self, img: np.ndarray, sigma: float = 0.0, seed: int = 0,
              **params: Any) -> np.ndarray:
        noise = np.random.default_rng(seed).normal(0.0, sigma, img.shape).astype(np.float32)
        return np.maximum(img + noise, 0.0).astype(np.float32)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("std",)


def build_augment(cfg: Mapping[str, Any] | None,
                  representation: str = "pseudo_colour") -> A.Compose:
    """Pipeline from conf/augment/: every step has a probability `p`; absent or p=0 = off.

    The schema is closed on purpose (no free list of albumentations classes):
    a colour transform cannot slip in through configuration.
    """
    cfg = dict(cfg or {})
    if not cfg.pop("enabled", True):
        return A.Compose([])
    steps: list[A.BasicTransform] = []
    dual = representation == "dual_energy"
    air = AIR_ATTENUATION if dual else AIR
    known = {"hflip", "vflip", "rot90", "affine", "attenuation", "noise", "blur"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"augment: unknown step(s) {unknown}; known steps: {sorted(known)}")

    if cfg.get("hflip", 0):
        steps.append(A.HorizontalFlip(p=float(cfg["hflip"])))
    if cfg.get("vflip", 0):
        steps.append(A.VerticalFlip(p=float(cfg["vflip"])))
    if cfg.get("rot90", 0):
        steps.append(A.RandomRotate90(p=float(cfg["rot90"])))
    if (aff := cfg.get("affine")) and aff.get("p", 0):
        steps.append(
            A.Affine(
                scale=tuple(aff.get("scale", (0.9, 1.1))),
                translate_percent=(-aff.get("translate", 0.05), aff.get("translate", 0.05)),
                rotate=(-aff.get("rotate", 10), aff.get("rotate", 10)),
                border_mode=cv2.BORDER_CONSTANT,
                fill=air,  # what the scanner sees around a parcel: nothing
                p=float(aff["p"]),
            )
        )
    if (att := cfg.get("attenuation")) and att.get("p", 0):
        steps.append(
            AttenuationGain(
                gain=tuple(att.get("gain", (0.8, 1.25))),
                offset=tuple(att.get("offset", (-0.05, 0.05))),
                p=float(att["p"]),
            )
        )
    if (noise := cfg.get("noise")) and noise.get("p", 0) and dual:
        steps.append(LayerNoise(std=tuple(noise.get("std", (0.01, 0.03))), p=float(noise["p"])))
    elif noise and noise.get("p", 0):
        # One noise field for all channels: independent per-channel noise would
        # perturb the hue, i.e. the material estimate.
        steps.append(
            A.GaussNoise(std_range=tuple(noise.get("std", (0.01, 0.03))), per_channel=False,
                         p=float(noise["p"]))
        )
    if (blur := cfg.get("blur")) and blur.get("p", 0):
        steps.append(
            A.GaussianBlur(blur_limit=(3, 3), sigma_limit=tuple(blur.get("sigma", (0.1, 0.8))),
                           p=float(blur["p"]))
        )
    return A.Compose(steps)
