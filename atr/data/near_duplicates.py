"""Near-duplicate scans: rescans of one bag and copies of one image, by perceptual hash.

Real archives hold the same bag scanned twice (put back on the belt: shifted, turned a
little, flipped, framed differently) and the same image saved twice (re-encoded,
resized, brightened). Copies that straddle train and calib calibrate the leak bound on
images the model has seen. `group_near_duplicates` finds them; `assign_splits(...,
groups=...)` then keeps each group in one split.

Chosen by measurement (docs/near-duplicates.md: HUMS real scans, simulator parcels,
planted copies): pHash of 16x16 = 256 bits over 72 views of the content crop
(atr/data/scene_hash.py); two images are as far apart as the nearest view of one to the
other's upright view; one scene: <= 40 bits. 64-bit hashes collide on distinct simulated
parcels; dHash / wHash separate worse. Not found: copies cropped into the object,
turned by much more than 12 degrees, zoomed (augmented copies): those need feature
matching at a far higher cost.

All pairs are compared (O(n^2 x views), numpy popcount in blocks, union-find): 20 s for
10^4 images on one core, ~80 s for 2 x 10^4, growing with n^2; past ~5 x 10^4 images
group per batch (scanner, month) or set `max_rotation: 0` (8 views, 9x faster).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from atr.data.scene_hash import HashSettings, hash_files, hash_image, progress_bar

__all__ = ["HashSettings", "NearDuplicateGroups", "group_hashes", "group_near_duplicates",
           "hash_files", "hash_image", "manifest_near_duplicates", "near_pairs"]


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


def near_pairs(hashes: np.ndarray, threshold: int, progress: bool = False) -> np.ndarray:
    """(k, 2) index pairs i < j whose distance (upright view vs any view) <= threshold."""
    n, n_views, words = hashes.shape
    upright = hashes[:, 0, :]
    by_word = np.ascontiguousarray(hashes.transpose(1, 2, 0))  # views, words, n
    block = max(1, 4_000_000 // max(1, n))  # rows per step: ~32 MB of XOR
    found = []
    for s in progress_bar(range(0, n, block), "comparing scenes", progress):
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
