"""benchmarks/real_images.py's folds and shortcut baseline, on simulated data only."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from atr.data.manifest import read_dataset
from atr.data.synth import make_dataset

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import real_folds  # noqa: E402
import real_shortcuts  # noqa: E402


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("bench") / "sim", count=90, image_size=32,
                        seed=4)


def test_folds_keep_each_scene_in_one_split(archive: Path, tmp_path: Path) -> None:
    labels = read_dataset(archive).manifest["knife"].to_numpy()
    groups = np.arange(len(labels)) // 3  # scenes of three rescans each
    folds = real_folds.fold_assignments(labels, groups, 5, seed=0)
    assert set(folds.tolist()) == set(range(5))
    for fold in range(5):
        splits = real_folds.fold_splits(folds, fold, 5, labels, groups, seed=0)
        assert set(splits.tolist()) == {"train", "val", "calib", "test"}
        for g in np.unique(groups):
            assert len(set(splits[groups == g].tolist())) == 1, f"scene {g} straddles splits"
    written = real_folds.write_fold(archive, tmp_path / "fold", splits)
    fold_ds = read_dataset(written)  # a readable dataset: images linked, splits replaced
    assert list(fold_ds.manifest["split"]) == list(splits)
    assert fold_ds.info["fold_of"] == str(archive)
    batches = [b for b in archive.iterdir() if b.is_dir()]
    assert batches and all((written / b.name).is_symlink() for b in batches)  # no copies


def test_trivial_classifier_finds_a_format_shortcut_and_nothing_in_noise() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([1, 0] * 40)
    sizes = rng.integers(200, 900, (80, 2))
    shortcut = real_shortcuts.trivial_auroc([".jpg" if y else ".tif" for y in labels], sizes,
                                            labels)
    assert shortcut["auroc_combined_5fold"] > 0.99
    assert shortcut["auroc_single_feature"]["format"] == 1.0
    blind = real_shortcuts.trivial_auroc([".tif"] * 80, sizes, labels)
    assert blind["auroc_single_feature"]["format"] == 0.5
    assert blind["auroc_combined_5fold"] < 0.75
