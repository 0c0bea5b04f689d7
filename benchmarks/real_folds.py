"""k-fold datasets over one imported real archive, for benchmarks/real_images.py.

Folds are drawn over scenes (near-duplicate groups, atr/data/near_duplicates.py), so a
rescan never sits in training while its twin is tested, and stratified on the threat
label. Fold k is the test split, fold k+1 the calibration split, the rest train (with a
sixth of it, again by scene, as val). Each fold is a dataset folder of its own whose
batch folders are links to the import's: no image is copied.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from atr.data.manifest import read_dataset, write_dataset_info, write_manifest


def scene_groups(dataset_dir: Path) -> tuple[np.ndarray, dict]:
    """Per item, its scene (near-duplicate group, atr/data/near_duplicates.py), and the
    grouping's summary (how many groups, the hash and threshold)."""
    from atr.data.near_duplicates import manifest_near_duplicates

    ds = read_dataset(dataset_dir)
    groups = manifest_near_duplicates(ds.manifest, ds.root)
    return np.asarray(groups.labels), groups.summary()


def fold_assignments(labels: np.ndarray, groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index 0..k-1 per item."""
    folds = np.full(len(labels), -1)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        folds[test] = fold
    return folds


def fold_splits(folds: np.ndarray, fold: int, k: int, labels: np.ndarray,
                groups: np.ndarray, seed: int) -> np.ndarray:
    """train / val / calib / test per item for one fold."""
    split = np.full(len(folds), "train", dtype=object)
    split[folds == fold] = "test"
    split[folds == (fold + 1) % k] = "calib"
    rest = np.flatnonzero(split == "train")
    inner = StratifiedGroupKFold(n_splits=6, shuffle=True, random_state=seed + fold)
    _, val = next(inner.split(np.zeros(len(rest)), labels[rest], groups[rest]))
    split[rest[val]] = "val"
    return split


def write_fold(dataset_dir: Path, out: Path, splits: np.ndarray) -> Path:
    """A dataset folder with the import's images (linked) and these splits."""
    ds = read_dataset(dataset_dir)
    out.mkdir(parents=True, exist_ok=True)
    for batch in sorted(p for p in ds.root.iterdir() if p.is_dir()):
        link = out / batch.name
        if not link.exists():
            link.symlink_to(batch.resolve(), target_is_directory=True)
    manifest: pd.DataFrame = ds.manifest.copy()
    manifest["split"] = list(splits)
    write_manifest(manifest, out, ds.taxonomy)
    info = {k: v for k, v in ds.info.items() if k not in ("schema_version", "taxonomy", "source")}
    counts = {s: int((manifest["split"] == s).sum()) for s in ("train", "val", "calib", "test")}
    write_dataset_info(out, ds.taxonomy, f"fold-of:{ds.info.get('source')}", **{
        **info, "splits": counts, "fold_of": str(dataset_dir)})
    return out


def fold_summary(splits: np.ndarray, labels: np.ndarray) -> dict[str, dict[str, int]]:
    return {s: {"items": int((splits == s).sum()), "threat": int(labels[splits == s].sum())}
            for s in ("train", "val", "calib", "test")}


def dump(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
