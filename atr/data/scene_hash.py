"""Perceptual hashes of X-ray scans, robust to how a bag was put on the belt.

Each image is hashed in many views so that two scans of one bag compare by their
nearest views: the luminance cropped to the content (what is darker than air, found on
a reduced, blurred copy so noise and speckle cannot move the box: a shifted bag or a
wider frame gives the same crop), then the 8 flips / quarter turns (dihedral group) of
that crop turned by 0, +-3, ..., +-12 degrees. atr/data/near_duplicates.py groups them;
docs/near-duplicates.md has the measurements behind every default.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from PIL import Image, ImageFilter
from tqdm import tqdm

from atr.package.preprocess import ImageDecodeError, decode_image

HASHES = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "whash": imagehash.whash,
    "ahash": imagehash.average_hash,
}
_WORK_SIDE = 256  # the crop is hashed from at most this many pixels a side (pHash uses 64)
_MASK_SIDE = 256  # content is found on a copy at most ~2x this: averaging kills noise
_TRIM = 0.002  # share of the content's mass left outside the crop at each side


@dataclass(frozen=True)
class HashSettings:
    """How images are hashed and how close two must be to count as one scene."""

    method: str = "phash"
    hash_size: int = 16  # bits = hash_size ** 2
    threshold: int = 40  # near duplicates: Hamming distance <= threshold bits
    max_rotation: float = 12.0  # degrees each way; 0 = flips and quarter turns only
    rotation_step: float = 3.0

    def __post_init__(self) -> None:
        if self.method not in HASHES:
            raise ValueError(f"near_duplicates.hash {self.method!r} not one of {sorted(HASHES)}")
        if self.hash_size < 4 or (self.method == "whash" and self.hash_size & (self.hash_size - 1)):
            raise ValueError(f"near_duplicates.hash_size {self.hash_size}: need >= 4 "
                             "(a power of 2 for whash)")
        if not 0 <= self.threshold < self.bits // 2:
            raise ValueError(f"near_duplicates.threshold {self.threshold}: need 0 <= threshold "
                             f"< {self.bits // 2} (half of the {self.bits} bits)")
        if self.max_rotation < 0 or (self.max_rotation > 0 and self.rotation_step <= 0):
            raise ValueError("near_duplicates.max_rotation must be >= 0 and rotation_step > 0")

    @property
    def bits(self) -> int:
        return self.hash_size**2

    def angles(self) -> list[float]:
        """Upright first: view 0 is the image as it is."""
        steps = int(self.max_rotation / self.rotation_step + 1e-9) if self.max_rotation else 0
        return [0.0] + [s * k * self.rotation_step for k in range(1, steps + 1) for s in (1, -1)]

    def describe(self) -> str:
        turns = f" x turns +-{self.max_rotation:g}/{self.rotation_step:g} deg"
        turns = turns if self.max_rotation else ""
        return f"{self.method} {self.bits} bit, content crop, flips{turns}"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> HashSettings:
        """From `importer.near_duplicates` (`enabled` is the caller's business)."""
        cfg = {k: v for k, v in dict(cfg or {}).items() if v is not None}
        unknown = sorted(set(cfg) - set(CONFIG_KEYS) - {"enabled"})
        if unknown:
            raise ValueError(f"near_duplicates: unknown key(s) {unknown}; "
                             f"known: enabled, {', '.join(CONFIG_KEYS)}")
        try:
            kw = {CONFIG_KEYS[k][0]: CONFIG_KEYS[k][1](v) for k, v in cfg.items() if k != "enabled"}
        except (TypeError, ValueError) as e:
            raise ValueError(f"near_duplicates: {e}") from None
        return cls(**kw)


# config key -> (HashSettings field, type)
CONFIG_KEYS: dict[str, tuple[str, type]] = {
    "hash": ("method", str), "hash_size": ("hash_size", int), "threshold": ("threshold", int),
    "max_rotation": ("max_rotation", float), "rotation_step": ("rotation_step", float),
}


def progress_bar(items: Sequence[Any], desc: str, wanted: bool) -> Any:
    # Like the importers' bars: on stderr, and only when a person watches a terminal.
    return tqdm(items, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=not (wanted and sys.stderr.isatty()))


def _content_crop(gray: np.ndarray) -> np.ndarray:
    """`gray` cut to where its content lies (X-ray: air is the brightest). The box spans
    all but 0.2 % of the content's mass (how much darker than air) at each side, per axis:
    speckle and faint edges near the threshold, which a box of "any content" follows,
    move it by nothing; a wider frame or a shift leaves it where it was."""
    h, w = gray.shape
    # Whole-pixel reduction and a symmetric blur: a mirrored image gets the mirrored box.
    f = max(1, max(h, w) // _MASK_SIDE)
    small = Image.fromarray(gray).reduce(f).filter(ImageFilter.BoxBlur(2))
    small = np.asarray(small, dtype=np.float32)
    air = float(np.percentile(small, 99))
    mass = np.clip(air - max(8.0, 0.06 * air) - small, 0.0, None)
    if mass.sum() <= 0:
        return gray  # blank or uniform: nothing to centre on
    (r0, r1), (c0, c1) = (_central(mass.sum(axis=ax), _TRIM) for ax in (1, 0))
    return gray[r0 * f:min(h, r1 * f), c0 * f:min(w, c1 * f)]


def _central(profile: np.ndarray, trim: float) -> tuple[int, int]:
    """[start, stop) holding all but `trim` of the profile's mass at each end."""
    cum = np.cumsum(profile) / profile.sum()
    start = int(np.searchsorted(cum, trim, side="right"))
    stop = int(np.searchsorted(cum, 1.0 - trim, side="left")) + 1
    return start, max(stop, start + 1)


def _shrink(gray: np.ndarray, side: int) -> np.ndarray:
    h, w = gray.shape
    if max(h, w) <= side:
        return gray
    s = side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.BOX))


def image_views(rgb: np.ndarray, settings: HashSettings) -> list[Image.Image]:
    """The views hashed for one image (uint8 HxWx3); view 0 is the upright crop."""
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    air = int(np.percentile(gray, 99))
    base = _shrink(_content_crop(gray), _WORK_SIDE)
    views = []
    for angle in settings.angles():
        turned = base if angle == 0 else _content_crop(np.asarray(Image.fromarray(base).rotate(
            angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=air)))
        for k in range(4):
            quarter = np.rot90(turned, k)
            views += [quarter, quarter[:, ::-1]]
    return [Image.fromarray(np.ascontiguousarray(v)) for v in views]


def hash_image(rgb: np.ndarray, settings: HashSettings) -> np.ndarray:
    """uint64 (views, words): every view's hash bits, packed."""
    fn = HASHES[settings.method]
    bits = np.stack([fn(v, hash_size=settings.hash_size).hash.ravel() for v in
                     image_views(rgb, settings)]).astype(np.uint8)
    bits = np.pad(bits, ((0, 0), (0, -bits.shape[1] % 64)))  # whole words; zeros never differ
    return np.packbits(bits, axis=1).view(np.uint64)


def hash_files(paths: Sequence[str | Path], settings: HashSettings,
               progress: bool = False) -> np.ndarray:
    """uint64 (images, views, words). A file that does not decode is refused by name."""
    out = []
    for path in progress_bar(paths, "hashing scenes", progress):
        try:
            out.append(hash_image(decode_image(path), settings))
        except ImageDecodeError as e:
            raise ImageDecodeError(f"{path}: {e}") from None
    views = len(settings.angles()) * 8
    words = -(-settings.bits // 64)
    return np.stack(out) if out else np.zeros((0, views, words), np.uint64)
