"""`atr data synth`: deterministic, batched, validated datasets from the simulator."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from atr.data.manifest import read_dataset
from atr.data.synth import make_dataset, split_plan

REPO = Path(__file__).resolve().parents[2]


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_config_and_seed_give_byte_identical_datasets(tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a", count=70, image_size=48, seed=5, save_raw=True, workers=1)
    b = make_dataset(tmp_path / "b", count=70, image_size=48, seed=5, save_raw=True, workers=2)
    c = make_dataset(tmp_path / "c", count=70, image_size=48, seed=6, save_raw=True, workers=1)
    assert _tree_digest(a) == _tree_digest(b)  # a process pool changes nothing
    assert _tree_digest(a) != _tree_digest(c)


def test_dataset_layout_labels_and_schema(tiny_dataset: Path) -> None:
    ds = read_dataset(tiny_dataset)  # validates the schema and that every file exists
    df = ds.manifest
    assert len(df) == 120
    assert set(df.split) == {"train", "val", "calib", "test"}
    assert df.image.str.match(r"^batch-\d{5}/\d{6}\.png$").all()
    assert df.raw.str.endswith(".raw.png").all()
    assert df.item_id.is_unique
    taxonomy = ds.taxonomy
    non_paper = [c for c in taxonomy.names if c not in taxonomy.paper]
    # paper_only is exactly "some paper class and nothing else"
    expected = (df[taxonomy.paper].max(axis=1) == 1) & (df[non_paper].max(axis=1) == 0)
    assert (df.paper_only == expected.astype(int)).all()
    assert 0 < df.paper_only.mean() < 1
    # the simulator labels every object, so no_threat is exactly "no threat class present"
    assert (df.no_threat == (df[taxonomy.threats].max(axis=1) == 0).astype(int)).all()
    assert (df.no_threat[df.paper_only == 1] == 1).all()
    assert df.no_threat.sum() > df.paper_only.sum()
    assert df[taxonomy.threats].to_numpy().sum() > 0


def test_batches_cap_folder_size(tmp_path: Path) -> None:
    out = make_dataset(tmp_path / "d", count=25, image_size=32, extra=["synth.batch_size=10"])
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == ["batch-00000", "batch-00001", "batch-00002"]
    assert len(list((out / "batch-00002").glob("*.png"))) == 5


def test_split_plan_exact_sizes_and_deterministic() -> None:
    plan = split_plan(1001, {"train": 0.6, "val": 0.1, "calib": 0.2, "test": 0.1}, seed=3)
    sizes = pd.Series(plan).value_counts().to_dict()
    assert sizes == {"train": 601, "calib": 200, "val": 100, "test": 100}
    assert plan == split_plan(1001, {"train": 0.6, "val": 0.1, "calib": 0.2, "test": 0.1}, seed=3)
    with pytest.raises(ValueError, match="synth.splits"):
        split_plan(10, {"train": -1.0}, seed=0)


def test_cli_writes_dataset_and_refuses_bad_keys(tmp_path: Path) -> None:
    out = tmp_path / "cli_ds"
    ok = subprocess.run(
        [sys.executable, "-m", "atr.cli", "data", "synth", f"synth.out={out}", "synth.count=12",
         "synth.image_size=32", "scanner=letter_80kv", "synth.save_raw=false"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    df = read_dataset(out).manifest
    assert (df.scanner_id == "letter_80kv").all() and df.raw.isna().all()
    bad = subprocess.run(
        [sys.executable, "-m", "atr.cli", "data", "synth", "synth.cuont=3"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert bad.returncode == 2
    assert "synth.cuont" in bad.stderr
    # an existing dataset is never overwritten by accident
    again = subprocess.run(
        [sys.executable, "-m", "atr.cli", "data", "synth", f"synth.out={out}", "synth.count=3"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert again.returncode == 1 and str(out) in again.stderr
    assert len(read_dataset(out).manifest) == 12
