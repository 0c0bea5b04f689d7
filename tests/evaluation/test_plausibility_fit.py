"""Fitting a package's plausibility spec on its reference, and the evaluate stage's part."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from atr.config import compose
from atr.evaluation import calibrate
from atr.evaluation.plausibility_fit import (
    MIN_OOD_ITEMS,
    SHARE_LIMIT,
    assessments_of,
    fit_ood,
    fit_spec,
)
from atr.package.manifest import verify_package
from atr.package.onnx_scorer import load_scorer
from atr.package.plausibility import PlausibilitySpec, default_spec

THRESHOLDS = ("air_max", "saturation_max", "black_max", "noise_max", "aspect_max", "size_max")


def scanner_figures(rng: np.random.Generator, n: int) -> list[dict[str, float]]:
    """image_figures of a scanner whose genuine scans sit partly outside the generic
    envelope: mostly empty belt, grainy, wide frames up to 20:1."""
    air = 0.9 + 0.096 * rng.beta(5, 1.5, n)  # up to 0.996: a tail past the default 0.99
    height = rng.integers(250, 400, n).astype(float)
    width = height * rng.uniform(2, 20, n)
    white = air * rng.uniform(0.6, 0.99, n)
    return [{"height": h, "width": w, "aspect": w / h, "air": a, "white_clipped": wc,
             "black_clipped": 0.0, "saturation": wc, "coverage": c, "noise": z, "contrast": 40.0}
            for h, w, a, wc, c, z in zip(height, width, air, white, rng.uniform(0.02, 0.9, n),
                                         rng.lognormal(np.log(95), 0.15, n), strict=True)]


def test_fitted_thresholds_pass_held_out_scans_of_the_reference_scanner() -> None:
    rng = np.random.default_rng(0)
    reference, held_out = scanner_figures(rng, 300), scanner_figures(rng, 5000)
    spec = fit_spec(reference)
    passed = np.mean([a.ok for a in assessments_of(spec, held_out)])
    assert passed >= 0.99
    # The generic envelope alone would send many of them away: the fit widened it...
    assert np.mean([a.ok for a in assessments_of(default_spec(), held_out)]) < 0.9
    assert "reference items failing the generic defaults" in " ".join(spec.notes)
    # ...and never narrowed any threshold.
    base = default_spec()
    assert all(getattr(spec, t) >= getattr(base, t) for t in THRESHOLDS)
    assert spec.coverage_min <= base.coverage_min and spec.aspect_min <= base.aspect_min
    assert spec.size_min <= base.size_min and spec.ood is None


def test_a_reference_holding_garbage_cannot_switch_the_checks_off() -> None:
    rng = np.random.default_rng(1)
    blank = {"height": 256.0, "width": 256.0, "aspect": 1.0, "air": 1.0, "white_clipped": 1.0,
             "black_clipped": 0.0, "saturation": 1.0, "coverage": 0.0, "noise": 0.0,
             "contrast": 0.0}
    noise = {**blank, "air": 0.1, "white_clipped": 0.0, "saturation": 0.0, "coverage": 1.0,
             "noise": 240.0, "contrast": 50.0}
    spec = fit_spec(scanner_figures(rng, 100) + [blank] * 5 + [noise] * 5)
    assert spec.air_max <= SHARE_LIMIT and spec.noise_max <= 200
    results = assessments_of(spec, [blank, noise])
    assert [(r.ok, r.blank) for r in results] == [(False, True), (False, False)]
    assert results[1].check == "noise"


@pytest.mark.parametrize(("n", "method"), [(2000, "exponential tail"), (12_000, "empirical")])
def test_ood_calibration_holds_on_fresh_samples(n: int, method: str) -> None:
    rng = np.random.default_rng(2)
    mix = rng.normal(size=(24, 24)) * np.linspace(3.0, 0.2, 24)
    # ReLU features, as a CNN's pooled embedding: skewed, not Gaussian.
    def draw(m: int) -> np.ndarray:
        return np.maximum(rng.normal(size=(m, 24)) @ mix + 1.0, 0.0)

    ood = fit_ood(draw(n))
    assert ood is not None and method in ood.method and ood.n_reference == n
    rate = float(np.mean(ood.score(draw(200_000)) > ood.threshold))
    assert 0.0003 <= rate <= 0.003, rate
    # Far from the reference: every feature far beyond anything it held.
    assert (ood.score(draw(100) * 4 + 10) > ood.threshold).all()


def test_a_small_reference_gets_no_ood_model_and_says_so() -> None:
    rng = np.random.default_rng(3)
    figures = scanner_figures(rng, MIN_OOD_ITEMS - 1)
    spec = fit_spec(figures, rng.normal(size=(MIN_OOD_ITEMS - 1, 8)))
    assert spec.ood is None and any("no ood model" in note for note in spec.notes)
    assert fit_ood(rng.normal(size=(MIN_OOD_ITEMS, 8))) is not None


def test_evaluate_stage_writes_the_spec_and_measures_its_cost(
        pristine_package: Path, eval_dataset: Path, tmp_path: Path) -> None:
    # One genuine paper-only test item replaced by a blank frame: the cost must count it.
    dataset = Path(shutil.copytree(eval_dataset, tmp_path / "dataset"))
    manifest = pd.read_parquet(dataset / "manifest.parquet")
    test = manifest[(manifest["split"] == "test") & (manifest["paper_only"] == 1)]
    Image.new("RGB", (48, 40), (255, 255, 255)).save(dataset / test["image"].iloc[0])
    package = Path(shutil.copytree(pristine_package, tmp_path / "model"))
    (package / "plausibility.json").write_text("{}")  # stale, from an earlier model
    out = tmp_path / "eval"
    result = calibrate.run(compose("evaluate", [
        f"evaluate.package_dir={package}", f"evaluate.dataset={dataset}",
        f"evaluate.out_dir={out}", "evaluate.batch_size=16", "policy.leak_rate_target=0.3",
        "policy.confidence=0.8", "policy.threat_recall_target=0.6",
        "policy.min_threat_positives=3"]))

    spec = PlausibilitySpec.load(package / "plausibility.json")
    assert spec.source == "fitted" and "fitted on 17 reference items" in spec.notes
    assert spec.ood is None  # 17 val items: too few for a 0.1 % tail
    assert load_scorer(package).plausibility == spec
    doc = json.loads((package / "package.json").read_text())
    assert "plausibility.json" in doc["files"] and verify_package(package) == []

    cost = json.loads((out / "metrics.json").read_text())["plausibility"]
    assert cost["low_risk"] == "paper_only" and cost["low_risk_n"] == len(test) == 8
    assert cost["low_risk_flagged"] == 1 and cost["low_risk_flagged_rate"] == 1 / 8
    assert cost["by_check"] == {"air": 1} and cost["blank"] == 1 and cost["flagged"] == 1
    scores = pd.read_parquet(out / "scores_test.parquet")
    blank_cleared = scores.loc[scores["image"] == test["image"].iloc[0], "decision"].item()
    assert cost["clears_blocked"] == int(blank_cleared == "CLEAR")
    assert cost["clears_n"] == int((scores["decision"] == "CLEAR").sum())
    summary = result["test_plausibility"]
    assert summary["low_risk_flagged"] == 1 and result["plausibility"].endswith(
        "plausibility.json")
