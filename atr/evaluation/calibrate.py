"""The pipeline's `evaluate` stage: calibrate a package's policy, then evaluate it.

    calib split -> policy.json (into the package; triage only when the split is too small)
    val split   -> reference.parquet (into the package; the drift monitor's baseline) and
                   plausibility.json (what an image must show before it may CLEAR)
    test split  -> metrics.json + plots (into evaluate.out_dir)
    package.json (sha256 of every package file) last, once the package is complete.

The three splits are disjoint on purpose: thresholds chosen on `calib` are
judged on `test`, so the test bounds are honest.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from atr.evaluation import plots
from atr.evaluation.plausibility_fit import measure_cost, write_package_spec
from atr.evaluation.report import report_from_frame
from atr.evaluation.scoring import add_decisions, load_dataset, score_dataset, score_matrix
from atr.package.layout import MANIFEST_FILE, PLAUSIBILITY_FILE, POLICY_FILE, REFERENCE_FILE
from atr.package.manifest import atomic_write_text, write_package_manifest
from atr.package.onnx_scorer import load_scorer

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
SAMPLES_PER_CELL = 2
MAX_SAMPLES = 12


def run(cfg: DictConfig) -> dict[str, Any]:
    from atr.policy.calibration import calibrate_policy
    from atr.policy.config import PolicyConfig
    from atr.policy.scanner_coverage import scanner_coverage
    from atr.policy.scanner_thresholds import certify_scanner_thresholds

    ev = cfg.evaluate
    package, dataset_dir, out_dir = Path(ev.package_dir), Path(ev.dataset), Path(ev.out_dir)
    batch_size = int(ev.batch_size)
    # A policy, drift reference or digest list left from an earlier run must not
    # survive a failed calibration of this one: a stale policy.json would be trusted.
    for stale in (POLICY_FILE, REFERENCE_FILE, PLAUSIBILITY_FILE, MANIFEST_FILE):
        if (package / stale).exists():
            log.info("removing %s before recalibrating", package / stale)
            (package / stale).unlink()

    scorer = load_scorer(package, require_policy=False)  # writing the policy is our job
    outputs, threats = scorer.outputs, scorer.outputs[1:]
    dataset = load_dataset(dataset_dir)
    policy_cfg = PolicyConfig.from_dict(OmegaConf.to_container(cfg.policy, resolve=True))

    calib = score_dataset(scorer, dataset, ["calib"], batch_size)
    calib_scores = score_matrix(calib, outputs)
    low_risk = calib[outputs[0]].to_numpy()  # the truth of the model's low-risk definition
    # Too small a split gives a triage-only policy (never CLEARs, its warning first); with
    # policy.on_insufficient=error InsufficientCalibrationError propagates: the stage fails
    # and no policy is written.
    policy = calibrate_policy(calib_scores, low_risk, calib[threats].to_numpy(), outputs,
                              policy_cfg)
    if "scanner_id" in calib.columns:
        evidence = (calib_scores, low_risk, calib[threats].to_numpy().any(axis=1),
                    calib["scanner_id"].tolist(), policy, policy_cfg)
        coverage, uncovered = scanner_coverage(*evidence)
        # a scanner the mix's bound does not speak for gets its own, stricter threshold
        # when its items certify one (atr.policy.scanner_thresholds)
        if certify_scanner_thresholds(*evidence, coverage):
            coverage, uncovered = scanner_coverage(*evidence)
        policy.calibration["scanners"] = coverage
        policy.warnings.extend(uncovered)
    atomic_write_text(package / POLICY_FILE, policy.to_json() + "\n")
    for warning in policy.warnings:
        log.warning("policy: %s", warning)

    val = add_decisions(score_dataset(scorer, dataset, ["val"], batch_size), policy, outputs)
    val.to_parquet(package / REFERENCE_FILE, index=False)
    plausibility = write_package_spec(scorer, dataset, val, package / PLAUSIBILITY_FILE)

    split = str(ev.split)
    test = add_decisions(score_dataset(scorer, dataset, [split], batch_size), policy, outputs)
    report = report_from_frame(test, policy, outputs)
    cost = measure_cost(scorer, dataset, plausibility, test)  # CLEARs it sends away
    metrics = {
        "package": str(package.resolve()),
        "dataset": str(dataset_dir.resolve()),
        "split": split,
        **report,  # low_risk and policy_mode first

        "calibration": policy.calibration,
        "policy_warnings": list(policy.warnings),
        "plausibility": cost,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / METRICS_FILE, json.dumps(metrics, indent=2, default=_plain) + "\n")
    test.drop(columns=["embedding"]).to_parquet(out_dir / f"scores_{split}.parquet", index=False)
    figures = write_plots(test, policy, outputs, dataset.root, out_dir)

    manifest = write_package_manifest(package, str(ev.model_name), dataset_dir)
    pol = report["policy"]
    return {
        # What the printed summary must say first: the definition CLEAR was calibrated
        # under, and whether the policy may CLEAR at all (its first warning says why not).
        "low_risk": policy.low_risk,
        "policy_mode": policy.mode,
        "package": str(package),
        "policy": str(package / POLICY_FILE),
        "reference": str(package / REFERENCE_FILE),
        "plausibility": str(package / PLAUSIBILITY_FILE),
        "metrics": str(out_dir / METRICS_FILE),
        "plots": [str(p) for p in figures],
        "package_files": sorted(manifest["files"]),
        "clear_threshold": None if policy.clears_nothing else policy.clear_threshold,
        f"{split}_auto_clear_rate": pol["auto_clear_rate"],
        f"{split}_leak_rate": pol["leak_rate"],
        f"{split}_leak_rate_upper": pol["leak_rate_upper"],
        f"{split}_macro_auroc": report["macro_auroc"],
        f"{split}_plausibility": {k: v for k, v in cost.items() if k != "spec"},
        "warnings": list(policy.warnings),
    }


def write_plots(
    frame: pd.DataFrame, policy: Any, outputs: list[str], root: Path, out_dir: Path
) -> list[Path]:
    from atr.package.preprocess import decode_image

    samples = sample_rows(frame, outputs)
    images = [decode_image(Path(root) / p) for p in samples["image"]]
    return [
        plots.plot_roc_pr(frame, outputs, out_dir / "roc_pr.png"),
        plots.plot_decision_confusion(frame, outputs, out_dir / "decision_confusion.png"),
        plots.plot_reliability(frame, outputs, out_dir / "reliability.png"),
        plots.plot_leak_vs_clear(frame, policy, outputs, out_dir / "leak_vs_auto_clear.png"),
        plots.plot_sample_grid(samples, images, outputs, out_dir / "samples.png"),
    ]


def sample_rows(frame: pd.DataFrame, outputs: list[str]) -> pd.DataFrame:
    """A few items of each (decision, truth group) pair, in manifest order (reproducible).

    Pairing with the truth shows the errors too (a threat item REVIEWed, a paper
    item INSPECTed), not only the easy cases.
    """
    groups = plots.truth_group(frame, outputs)
    picks = [
        frame[(frame["decision"] == d) & (groups == g)].head(SAMPLES_PER_CELL)
        for d in plots.DECISIONS
        for g in plots.truth_groups(outputs)
    ]
    return pd.concat(picks).head(MAX_SAMPLES).reset_index(drop=True)


def _plain(value: Any) -> Any:
    """json.dumps fallback for numpy scalars in the reports."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
