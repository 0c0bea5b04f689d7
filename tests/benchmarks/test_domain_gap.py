"""benchmarks/domain_gap.py's classifier, on simulated sets only (CI has no real archive).

The same code path as the benchmark (domain_features.extract + separability): it must
tell a clean scanner from a noisy one, and must not tell a scanner from itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atr.data.manifest import read_dataset
from atr.data.synth import make_dataset
from atr.package.preprocess import PreprocessSpec

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import domain_features  # noqa: E402
import domain_gap  # noqa: E402

N = 60
NOISY = ["scanner.noise.photons_low=300", "scanner.noise.photons_high=450"]  # ~20x fewer


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """clean (seed 1), same_scanner (seed 2), noisy (seed 1, 20x fewer photons): 64 px."""
    root = tmp_path_factory.mktemp("domain")
    out = {}
    for name, seed, extra in (("clean", 1, []), ("same_scanner", 2, []), ("noisy", 1, NOISY)):
        ds = read_dataset(make_dataset(root / name, count=N, image_size=64, seed=seed,
                                       save_raw=True, splits={"test": 1.0}, extra=extra))
        out[name] = [ds.root / p for p in ds.manifest["image"]]
        out[name + "_raw"] = [ds.root / p for p in ds.manifest["raw"]]
    return out


def _features(sets: dict[str, list[Path]], name: str, rep: str) -> domain_features.Features:
    spec = PreprocessSpec(input_size=64, representation=rep)
    return domain_features.extract(spec, sets[name + ("_raw" if spec.dual_energy else "")])


@pytest.mark.parametrize("rep", ["pseudo_colour", "dual_energy"])
def test_separates_a_noisy_scanner_but_not_a_scanner_from_itself(sets, rep):
    clean = _features(sets, "clean", rep)
    noisy = domain_features.separability(clean, _features(sets, "noisy", rep))
    assert noisy["auroc_mean"] > 0.9, noisy
    assert noisy["by_feature_group"]["background"]["mean"] > 0.9  # the air's noise shows
    assert noisy["n_first"] == noisy["n_second"] == N and len(noisy["auroc_folds"]) == 5

    itself = domain_features.separability(clean, _features(sets, "same_scanner", rep))
    assert abs(itself["auroc_mean"] - 0.5) < 0.15, itself
    assert itself["auroc_mean"] < noisy["auroc_mean"] - 0.3


def test_geometry_sees_the_scan_frame(sets, tmp_path):
    """A wide scan letterboxed into the canvas: its area and aspect say so (the simulator's
    scans are square, real ones are not: the benchmark's strongest single cue)."""
    spec = PreprocessSpec(input_size=64)
    wide = tmp_path / "wide.png"
    Image.open(sets["clean"][0]).convert("RGB").crop((0, 16, 64, 48)).save(wide)
    feats = domain_features.extract(spec, [sets["clean"][0], wide])
    stat = dict(zip(feats.names, feats.stats.T, strict=True))
    assert feats.pixels.shape == (2, 3 * 32 * 32)
    assert stat["scan_aspect"].tolist() == [1.0, 0.5]
    assert stat["scan_area"][0] == 1.0 and stat["scan_area"][1] == pytest.approx(0.5)
    assert np.all(stat["object_area"] <= stat["scan_area"])


def test_refuses_what_it_cannot_measure(sets, tmp_path):
    clean = _features(sets, "clean", "pseudo_colour")
    few = domain_features.Features(clean.pixels[:3], clean.stats[:3], clean.names, clean.groups)
    with pytest.raises(ValueError, match="need >= 5 items per set"):
        domain_features.separability(clean, few)
    with pytest.raises(ValueError, match="different statistics"):
        domain_features.separability(clean, domain_features.Features(
            clean.pixels, clean.stats, ["x"] * len(clean.names), clean.groups))
    with pytest.raises(ValueError, match="multiple of 32"):
        domain_features.extract(PreprocessSpec(input_size=48), sets["clean"][:1])
    out = tmp_path / "gap.json"
    with pytest.raises(SystemExit, match="not a folder"):
        domain_gap.main(["--data", str(tmp_path / "no-hums"), "--out", str(out),
                         "--work", str(tmp_path / "work")])
    assert not out.exists()
