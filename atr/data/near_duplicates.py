"""Near-duplicate scans: rescans of one bag and copies of one image, by perceptual hash.

Real archives hold the same bag scanned twice (put back on the belt: shifted, turned a
little, flipped, framed differently) and the same image saved twice (re-encoded,
resized, brightened). Copies that straddle train and calib calibrate the leak bound on
images the model has seen. `group_near_duplicates` finds them; `assign_splits(...,
groups=...)` then keeps each group in one split.

Chosen by measurement (docs/near-duplicates.md: HUMS real scans, simulator parcels,
planted rescans): luminance cropped to the content (darker than air; found on a smoothed
128-px copy, so noise cannot move the box), pHash 16x16 = 256 bits, 72 views (the 8
flips / quarter turns of the crop turned by 0, +-3, ..., +-12 degrees; distance = nearest
view of one image to the other's upright view), threshold 32 bits. 64-bit hashes collide
on distinct simulated parcels; dHash / wHash separate worse; without turns, 2 degrees
cost 46 bits. Not found: copies cropped into the object, turned > ~12 degrees, zoomed.

All pairs are compared (O(n^2 x views), numpy popcount in blocks): see the doc for the
measured time; past ~5 x 10^4 images group per batch, or set `max_rotation: 0`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from PIL import Image
from tqdm import tqdm

from atr.inference.preprocess import ImageDecodeError, decode_image

HASHES = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "whash": imagehash.whash,
    "ahash": imagehash.average_hash,
}
_WORK_SIDE = 256  # the crop is hashed from at most this many pixels a side (pHash uses 64)
_MASK_SIDE = 128  # content is found on a copy this small: averaging kills detector noise


@dataclass(frozen=True)
class HashSettings:
    """How images are hashed and how close two must be to count as one scene."""

    method: str = "phash"
    hash_size: int = 16  # bits = hash_size ** 2
    threshold: int = 32  # near duplicates: Hamming distance <= threshold bits
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


@dataclass(frozen=True)
class NearDuplicateGroups:
    """Which items are one scene: `labels[i]` numbers item i's group (by first member)."""

    labels: np.ndarray
    settings: HashSettings
    pairs: int  # near pairs found (before the transitive closure)

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.labels) if len(self.labels) else np.zeros(0, np.int64)

    @property
    def groups(self) -> int:
        """Groups of more than one item."""
        return int((self.sizes > 1).sum())

    @property
    def items_in_groups(self) -> int:
        return int(self.sizes[self.sizes > 1].sum())

    @property
    def largest(self) -> int:
        return int(self.sizes.max()) if self.groups else 0

    def keys(self, ids: Sequence[str] | Iterable[str]) -> list[str]:
        """A scene key per item: the smallest id in its group. A lone item keeps its own
        id, so a split keyed on it ranks that item exactly as a split without groups."""
        ids = [str(i) for i in ids]
        if len(ids) != len(self.labels):
            raise ValueError(f"{len(ids)} ids for {len(self.labels)} grouped items")
        first: dict[int, str] = {}
        for label, item in zip(self.labels.tolist(), ids, strict=True):
            first[label] = min(first.get(label, item), item)
        return [first[label] for label in self.labels.tolist()]

    def summary(self) -> dict[str, Any]:
        """What dataset.json records under `near_duplicates`."""
        return {"groups": self.groups, "items_in_groups": self.items_in_groups,
                "largest": self.largest, "threshold": self.settings.threshold,
                "method": self.settings.describe()}


def _bar(items: Sequence[Any], desc: str, wanted: bool) -> Any:
    # Like the importers' bars: on stderr, and only when a person watches a terminal.
    return tqdm(items, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=not (wanted and sys.stderr.isatty()))


def _content_crop(gray: np.ndarray) -> np.ndarray:
    """`gray` cut to the box of what is darker than air (X-ray: air is the brightest)."""
    h, w = gray.shape
    scale = min(1.0, _MASK_SIDE / max(h, w))
    small = np.asarray(
        Image.fromarray(gray).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                     Image.Resampling.BOX), dtype=np.float32)
    air = float(np.percentile(small, 99))
    content = small < air - max(8.0, 0.06 * air)
    rows, cols = np.flatnonzero(content.any(axis=1)), np.flatnonzero(content.any(axis=0))
    if len(rows) < 2 or len(cols) < 2:
        return gray  # blank or uniform: nothing to centre on
    r0, c0 = int(rows[0] / scale), int(cols[0] / scale)
    r1 = min(h, math.ceil((rows[-1] + 1) / scale))
    c1 = min(w, math.ceil((cols[-1] + 1) / scale))
    return gray[r0:r1, c0:c1]


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
    for path in _bar(paths, "hashing scenes", progress):
        try:
            out.append(hash_image(decode_image(path), settings))
        except ImageDecodeError as e:
            raise ImageDecodeError(f"{path}: {e}") from None
    views = len(settings.angles()) * 8
    words = -(-settings.bits // 64)
    return np.stack(out) if out else np.zeros((0, views, words), np.uint64)


def near_pairs(hashes: np.ndarray, threshold: int, progress: bool = False) -> np.ndarray:
    """(k, 2) index pairs i < j whose distance (upright view vs any view) <= threshold."""
    n, n_views, words = hashes.shape
    upright = hashes[:, 0, :]
    by_word = np.ascontiguousarray(hashes.transpose(1, 2, 0))  # views, words, n
    block = max(1, 4_000_000 // max(1, n))  # rows per step: ~32 MB of XOR
    found = []
    for s in _bar(range(0, n, block), "comparing scenes", progress):
        rows = upright[s:s + block]
        m = len(rows)
        # Word by word into reused buffers: 7x faster than popcounting (m, n, words) arrays.
        xor, count = np.empty((m, n), np.uint64), np.empty((m, n), np.uint8)
        dist, acc = np.full((m, n), np.iinfo(np.uint16).max, np.uint16), np.empty((m, n), np.uint16)
        for v in range(n_views):
            acc[:] = 0
            for w in range(words):
                np.bitwise_xor(rows[:, w, None], by_word[v, w][None, :], out=xor)
                np.bitwise_count(xor, out=count)
                acc += count
            np.minimum(dist, acc, out=dist)
        i, j = np.nonzero(dist <= threshold)
        i = i + s
        keep = i != j
        found.append(np.stack([np.minimum(i, j)[keep], np.maximum(i, j)[keep]], axis=1))
    if not found:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(found), axis=0)


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Union-find over the pairs; groups numbered in order of their first member."""
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    for a, b in pairs.tolist():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    number: dict[int, int] = {}
    return np.array([number.setdefault(root(i), len(number)) for i in range(n)], np.int64)


def group_hashes(hashes: np.ndarray, settings: HashSettings,
                 progress: bool = False) -> NearDuplicateGroups:
    pairs = near_pairs(hashes, settings.threshold, progress)
    return NearDuplicateGroups(_components(len(hashes), pairs), settings, len(pairs))


def group_near_duplicates(
    paths: Sequence[str | Path], *, settings: HashSettings | None = None,
    progress: bool = False, **overrides: Any,
) -> NearDuplicateGroups:
    """Group image files into scenes. `overrides`: HashSettings fields (threshold=, ...)."""
    settings = dataclasses.replace(settings or HashSettings(), **overrides)
    return group_hashes(hash_files(paths, settings, progress), settings, progress)


def manifest_near_duplicates(manifest: Any, root: str | Path, *,
                             settings: HashSettings | None = None,
                             progress: bool = False) -> NearDuplicateGroups:
    """Scenes of a manifest's rows (image paths relative to `root`), e.g. to re-split an
    assembled multi-source set by scene:
        g = manifest_near_duplicates(df, root)
        df["split"] = assign_splits(with_strata(df.assign(scene=g.keys(df["item_id"])), tax),
                                    fractions, seed, groups="scene")
    """
    root = Path(root)
    return group_near_duplicates([root / p for p in manifest["image"]], settings=settings,
                                 progress=progress)
