"""The archive demo's parts on small inputs: the new scanner's crops, the archive's drift
thresholds and the working copy's params."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from atr.archive.checkout import archive_params, copy_working_tree
from atr.archive.crops import grid, write_crops
from atr.archive.thresholds import bootstrap_thresholds
from atr.data.manifest import read_dataset
from atr.monitor.drift_scores import DriftMethods, window_scores
from atr.monitor.reference import monitor_frame
from atr.package.dual_energy import decode_dual_energy
from atr.package.image_stats import STAT_NAMES
from atr.policy.taxonomy import default_taxonomy

REPO = Path(__file__).resolve().parents[2]


def monitor_items(n: int, seed: int) -> pd.DataFrame:
    """A monitor frame of n items: random embedding, scores, image statistics, decisions."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"item_id": [f"it-{seed}-{i}" for i in range(n)]})
    for o in ("no_threat", "knife"):
        frame[f"score_{o}"] = rng.beta(2, 3, n)
    frame["embedding"] = list(rng.normal(0, 1, (n, 8)).astype(np.float32))
    for name in STAT_NAMES:
        frame[name] = rng.normal(0.5, 0.05, n)
    frame["decision"] = rng.choice(["REVIEW", "INSPECT"], n)
    return monitor_frame(frame)


def test_grid_covers_the_scan_flush_with_its_edges() -> None:
    assert grid(1754, 600, 150) == [0, 150, 300, 450, 600, 750, 900, 1050, 1154]
    assert grid(1042, 600, 150) == [0, 150, 300, 442]
    assert grid(500, 600, 150) == [0]  # smaller than a crop: the whole extent once


def test_crops_are_low_equal_high_pairs_of_the_scanners_counts(tmp_path: Path) -> None:
    src = tmp_path / "scanner"
    src.mkdir()
    rng = np.random.default_rng(0)
    scans = {f"s{k}": rng.integers(15_000, 28_000, (130, 170)).astype(np.uint16)
             for k in range(2)}
    for name, scan in scans.items():
        Image.fromarray(scan).save(src / f"{name}.tif")
    Image.fromarray(np.full((10, 10), 29_000, np.uint16)).save(src / "s0_blank.tif")
    out = write_crops(src, tmp_path / "crops", default_taxonomy(), name="nist",
                      scanner_id="nist-1", crop=64, stride=40)
    ds = read_dataset(out)
    m = ds.manifest
    assert len(m) == 2 * len(grid(130, 64, 40)) * len(grid(170, 64, 40))  # blank skipped
    assert set(m["split"]) == {"test"} and set(m["scanner_id"]) == {"nist-1"}
    assert (m["no_threat"] == 0).all() and (m["paper_only"] == 0).all()  # nothing claimed
    row = m[m["item_id"] == "nist/s1/y0040x0080"].iloc[0]
    pair = decode_dual_energy((out / row["raw"]).read_bytes(), max_pixels=10**7)
    np.testing.assert_array_equal(pair[..., 0], scans["s1"][40:104, 80:144])  # exact counts
    np.testing.assert_array_equal(pair[..., 0], pair[..., 1])  # one layer: low = high

    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(src / "colour.tif")
    with pytest.raises(ValueError, match=r"colour.tif: mode RGB, 1 page\(s\)"):
        write_crops(src, tmp_path / "refused", default_taxonomy(), name="n", scanner_id="x")
    assert not (tmp_path / "refused").exists()  # checked before anything is written
    with pytest.raises(FileNotFoundError, match=r"no file matches '\*.png'"):
        write_crops(src, tmp_path / "none", default_taxonomy(), name="n", scanner_id="x",
                    pattern="*.png")


def test_bootstrap_thresholds_cover_the_held_out_items_and_keep_the_floors() -> None:
    methods = DriftMethods.from_cfg({"embedding": {"method": "mmd"}})
    reference, held = monitor_items(20, seed=1), monitor_items(20, seed=2)
    floors = {"embedding": 0.01, "scores": 5.0, "decisions": 0.12, "image_stats": None}
    cal = bootstrap_thresholds(reference, held, methods, window=40, floors=floors, draws=30)
    t = cal["thresholds"]
    assert t["scores"] == 5.0 and t["image_stats"] is None  # a floor above, a silenced signal
    assert t["embedding"] == max(0.01, cal["bootstrap_max"]["embedding"])
    assert cal["bootstrap_p95"]["embedding"] <= cal["bootstrap_max"]["embedding"]
    # the held-out items themselves, cycled as the line replays them, stay under
    cycled = held.iloc[np.arange(40) % 20].reset_index(drop=True)
    assert window_scores(reference, cycled, methods)["embedding"] <= t["embedding"]
    assert cal == bootstrap_thresholds(reference, held, methods, 40, floors, draws=30)  # seeded


def test_working_copy_params_name_the_import_alone(tmp_path: Path) -> None:
    params = archive_params(REPO, "hums", "data/imports/hums",
                            {"experiment": "real_archive", "max_epochs": 3}, "atr-archive")
    repo_params = yaml.safe_load((REPO / "pipelines" / "params.yaml").read_text())
    assert params["dataset"] == {"sources": [{"name": "hums", "kind": "import", "weight": 1,
                                              "path": "data/imports/hums"}]}
    assert "policy" not in params and "policy" not in repo_params  # conf/policy's targets
    assert params["train"]["experiment"] == "real_archive" and params["train"]["max_epochs"] == 3
    assert params["prepare"]["frontline_batches"] == 0
    assert params["registry"]["model_name"] == "atr-archive"
    (tmp_path / "not-a-repo").mkdir()
    with pytest.raises(ValueError, match="not a git checkout of ATR"):
        copy_working_tree(tmp_path / "not-a-repo", tmp_path / "copy")
