"""The evaluate stage end to end on a tiny package, the report, and the markdown table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from atr.config import compose
from atr.evaluation import calibrate, job
from atr.evaluation.report import evaluate_package, report_markdown
from atr.evaluation.scoring import score_column
from atr.package.image_stats import STAT_NAMES
from atr.package.manifest import sha256_file, verify_package
from atr.package.onnx_scorer import PackageError
from atr.policy.calibration import InsufficientCalibrationError
from atr.policy.decision import Policy

# Loose targets the 35 non-paper items of the fixture's calib split can support
# (zero leaks in n items bound the rate at 0.3 with 80% confidence from n = 5).
LOOSE_POLICY = [
    "policy.leak_rate_target=0.3",
    "policy.confidence=0.8",
    "policy.threat_recall_target=0.6",
    "policy.min_threat_positives=3",
]
PLOTS = ("roc_pr.png", "decision_confusion.png", "reliability.png",
         "leak_vs_auto_clear.png", "samples.png")


def _cfg(package: Path, dataset: Path, out: Path, *extra: str) -> Any:
    return compose("evaluate", [
        f"evaluate.package_dir={package}", f"evaluate.dataset={dataset}",
        f"evaluate.out_dir={out}", "evaluate.batch_size=16", *extra,
    ])


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory, pristine_package: Path,
               eval_dataset: Path) -> tuple[Path, Path, dict[str, Any]]:
    import shutil

    root = tmp_path_factory.mktemp("calibrated")
    package = Path(shutil.copytree(pristine_package, root / "model"))
    out = root / "eval"
    result = calibrate.run(_cfg(package, eval_dataset, out, *LOOSE_POLICY))
    return package, out, result


def test_stage_writes_policy_reference_metrics_plots(calibrated: tuple) -> None:
    package, out, result = calibrated
    policy = Policy.load(package / "policy.json")
    assert policy.calibration["n"] == 20 + 20 + 3 * 5  # the fixture's calib split
    assert policy.targets["leak_rate_target"] == 0.3
    assert set(policy.inspect_thresholds) == set(policy.threats)
    # Per-scanner coverage of the bound: the fixture's one scanner holds the whole split.
    coverage = policy.calibration["scanners"]
    assert set(coverage) == {"test-scanner"} and coverage["test-scanner"]["n"] == 55
    assert coverage["test-scanner"]["n_nonpaper"] == policy.calibration["n_nonpaper"]

    ref = pd.read_parquet(package / "reference.parquet")
    assert len(ref) == 6 + 6 + 5 and set(ref["split"]) == {"val"}
    assert {score_column(o) for o in policy.outputs} <= set(ref.columns)
    assert set(STAT_NAMES) <= set(ref.columns)
    assert len(ref["embedding"].iloc[0]) == 8
    assert set(ref["decision"]) <= {"CLEAR", "REVIEW", "INSPECT"}

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["policy"]["n"] == 8 + 8 + 2 * 5
    assert set(metrics["auroc"]) == set(policy.outputs) == set(metrics["ap"])
    assert all(0.0 <= v <= 1.0 for v in metrics["auroc"].values())
    for name in PLOTS:
        assert (out / name).stat().st_size > 1000, name
    assert result["policy"] == str(package / "policy.json")


def test_package_json_hashes_every_file(calibrated: tuple) -> None:
    package, _, _ = calibrated
    doc = json.loads((package / "package.json").read_text())
    assert set(doc["files"]) == {"model.onnx", "preprocess.json", "taxonomy.json", "run.json",
                                 "policy.json", "reference.parquet", "plausibility.json"}
    assert doc["files"]["policy.json"] == sha256_file(package / "policy.json")
    assert doc["run_id"] == "test-run"
    assert verify_package(package) == []


def test_too_small_calib_set_gives_a_triage_policy(package: Path, tiny_dataset: Path,
                                                   tmp_path: Path) -> None:
    # The simulated set's calib split is far below the default policy's 598 non-paper items:
    # the stage still succeeds, with a policy that never clears and says so first.
    (package / "policy.json").write_text("{}")  # stale, from an earlier model
    out = tmp_path / "eval"
    result = calibrate.run(_cfg(package, tiny_dataset, out))
    policy = Policy.load(package / "policy.json")
    n_nonpaper = policy.calibration["n_nonpaper"]
    assert policy.mode == "triage_only" and policy.clears_nothing and n_nonpaper < 598
    assert policy.warnings[0].startswith("TRIAGE ONLY")
    assert policy.calibration["clear"]["more_items_to_certify"] == 598 - n_nonpaper
    assert set(policy.calibration["scanners"]) == set(_calib(tiny_dataset)["scanner_id"])

    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["low_risk"], metrics["policy_mode"]) == ("paper_only", "triage_only")
    assert metrics["policy"]["policy_mode"] == "triage_only"
    assert metrics["policy_warnings"][0] == policy.warnings[0]
    assert metrics["policy"]["auto_clear_rate"] == 0.0
    assert metrics["policy"]["confusion"]["paper_only"]["CLEAR"] == 0
    assert result["policy_mode"] == "triage_only" and result["warnings"][0] == policy.warnings[0]
    assert list(result)[:2] == ["low_risk", "policy_mode"]  # the printed summary starts so
    assert "CLEAR" not in set(pd.read_parquet(package / "reference.parquet")["decision"])
    assert verify_package(package) == []


def _calib(dataset: Path) -> pd.DataFrame:
    frame = pd.read_parquet(dataset / "manifest.parquet")
    return frame[frame["split"] == "calib"]


def test_too_small_calib_set_is_refused_when_so_configured(package: Path, tiny_dataset: Path,
                                                           tmp_path: Path) -> None:
    # A stale policy from an earlier model must not survive the refused calibration.
    (package / "policy.json").write_text("{}")
    (package / "reference.parquet").write_bytes(b"stale")
    cfg = _cfg(package, tiny_dataset, tmp_path / "eval", "policy.on_insufficient=error")
    with pytest.raises(InsufficientCalibrationError, match="598"):
        calibrate.run(cfg)
    assert not (package / "policy.json").exists()
    assert not (package / "reference.parquet").exists()
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_no_threat_model_is_calibrated_and_judged_on_the_no_threat_truth(
        no_threat_package: Path, eval_dataset: Path, tmp_path: Path) -> None:
    import shutil

    package = Path(shutil.copytree(no_threat_package, tmp_path / "model"))
    out = tmp_path / "eval"
    result = calibrate.run(_cfg(package, eval_dataset, out, *LOOSE_POLICY))
    policy = Policy.load(package / "policy.json")
    assert policy.low_risk == "no_threat" and policy.mode == "certified"
    # Goods carry no threat here: only the 15 threat items of the calib split are not low risk.
    calib = _calib(eval_dataset)
    assert policy.calibration["n_not_low_risk"] == int((calib["no_threat"] == 0).sum()) == 15
    assert policy.calibration["scanners"]["test-scanner"]["n_nonpaper"] == 15

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["low_risk"] == metrics["policy"]["low_risk"] == "no_threat"
    assert list(metrics["policy"]["confusion"]) == ["no_threat", "unverified", "threat"]
    assert metrics["policy"]["n_not_low_risk"] == 2 * 5  # the test split's threat items
    assert set(metrics["auroc"]) == set(policy.outputs) and "no_threat" in metrics["auroc"]
    scores = pd.read_parquet(out / "scores_test.parquet")
    assert {"no_threat", "paper_only", "score_no_threat"} <= set(scores.columns)
    assert result["low_risk"] == "no_threat"
    table = report_markdown({"m": evaluate_package(package, eval_dataset)})
    assert "| low risk (CLEAR evidence) | no_threat |" in table
    assert "| policy mode | certified |" in table


def test_evaluate_package_reuses_the_packaged_policy(calibrated: tuple, eval_dataset: Path) -> None:
    package, out, _ = calibrated
    report = evaluate_package(package, eval_dataset, split="test")
    stage = json.loads((out / "metrics.json").read_text())
    assert report["policy"] == stage["policy"]
    assert report["auroc"] == pytest.approx(stage["auroc"])
    on_val = evaluate_package(package, eval_dataset, split="val")
    assert on_val["policy"]["n"] == 17


def test_evaluate_package_needs_a_policy(pristine_package: Path, eval_dataset: Path) -> None:
    with pytest.raises(PackageError, match="policy.json"):
        evaluate_package(pristine_package, eval_dataset)


def test_report_only_job_leaves_package_untouched(calibrated: tuple, eval_dataset: Path,
                                                   tmp_path: Path) -> None:
    package, _, _ = calibrated
    before = {p.name: sha256_file(p) for p in package.iterdir()}
    result = job.run(_cfg(package, eval_dataset, tmp_path, "evaluate.calibrate=false"))
    assert (result["low_risk"], result["policy_mode"]) == ("paper_only", "certified")
    assert Path(result["report"]).is_file() and (tmp_path / "report_test.md").is_file()
    assert {p.name: sha256_file(p) for p in package.iterdir()} == before


def test_markdown_table_has_each_metric_side_by_side(calibrated: tuple, eval_dataset: Path) -> None:
    package, _, _ = calibrated
    report = evaluate_package(package, eval_dataset)
    table = report_markdown({"challenger": report, "champion": report})
    lines = table.splitlines()
    assert lines[0] == "| metric | challenger | champion |"
    for label in ("low risk (CLEAR evidence)", "policy mode", "low-risk items cleared",
                  "auto-clear rate", "leak rate", "leak rate, 80% upper bound",
                  "threat items cleared", "threat items cleared, 80% upper bound",
                  "analyst load (REVIEW)", "macro AUROC", "macro AP"):
        assert any(line.startswith(f"| {label} |") for line in lines), label
    for threat in ("firearm", "knife", "ammunition", "narcotics", "lithium_battery"):
        assert any(line.startswith(f"| recall {threat} |") for line in lines), threat
    for output in ("paper_only", "firearm"):
        assert any(line.startswith(f"| AUROC {output} |") for line in lines)
        assert any(line.startswith(f"| AP {output} |") for line in lines)
    assert all(line.count("|") == 4 for line in lines)
    # A metric one side lacks reads n/a instead of vanishing.
    partial = {"policy": {"n": 3}}
    assert "| macro AUROC | n/a |" in report_markdown({"old": partial})
