"""The evaluation report of a model package on a labelled split, and its markdown table.

`evaluate_package` is what the gate and `atr evaluate` run on any package and
any manifest: the package's own calibrated policy applied to the split
(`atr.policy.safety_metrics.policy_report`), plus per-output AUROC / AP.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from atr.evaluation.metrics import ranking_metrics
from atr.evaluation.scoring import load_dataset, score_dataset, score_matrix
from atr.package.onnx_scorer import load_scorer


def report_from_frame(frame: pd.DataFrame, policy: Any, outputs: list[str]) -> dict[str, Any]:
    """Policy report and ranking metrics of an already scored frame.

    The low-risk truth is the column named outputs[0] (`paper_only` or `no_threat`), the
    definition the policy was calibrated under; the report names it (`low_risk`) and the
    policy's mode (`policy_mode`: certified | triage_only).
    """
    from atr.policy.safety_metrics import policy_report

    if list(policy.outputs) != list(outputs):
        raise ValueError(f"policy outputs {policy.outputs} differ from the model's {outputs}")
    threats = outputs[1:]
    report = policy_report(
        policy,
        score_matrix(frame, outputs),
        frame[outputs[0]].to_numpy(),
        frame[threats].to_numpy().reshape(len(frame), len(threats)),
        scanner_ids=frame["scanner_id"].astype(str).tolist() if "scanner_id" in frame
        else None,
    )
    return {"low_risk": policy.low_risk, "policy_mode": policy.mode, "policy": report,
            **ranking_metrics(frame, outputs)}


def evaluate_package(
    package_dir: str | Path,
    dataset_dir: str | Path,
    split: str = "test",
    batch_size: int = 32,
) -> dict[str, Any]:
    """Score `split` of the dataset with the package and report on it.

    The package must hold a calibrated `policy.json`: a package without one has
    never passed the evaluate stage and has no decisions to report.
    """
    scorer = load_scorer(package_dir)
    dataset = load_dataset(dataset_dir)
    frame = score_dataset(scorer, dataset, [split], batch_size=batch_size)
    report = report_from_frame(frame, scorer.policy, scorer.outputs)
    return {
        "package": str(Path(package_dir).resolve()),
        "dataset": str(Path(dataset_dir).resolve()),
        "split": split,
        **report,
    }


# --- markdown -----------------------------------------------------------------------------


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100.0 * float(value):.2f}%"


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def _rows(report: Mapping[str, Any]) -> dict[str, str]:
    """One report as {row label: cell}; the row labels are the table's first column."""
    pol = report.get("policy") or {}
    conf = pol.get("confidence")
    bound = f"{conf:.0%} upper" if isinstance(conf, float) else "upper"
    mode = pol.get("policy_mode")
    cells = {
        # Which truth CLEAR was calibrated against, and whether it may CLEAR at all.
        "low risk (CLEAR evidence)": str(pol.get("low_risk", "n/a")),
        "policy mode": "TRIAGE ONLY (never clears)" if mode == "triage_only"
        else str(mode or "n/a"),
        "items": str(pol.get("n", "n/a")),
        "auto-clear rate": _pct(pol.get("auto_clear_rate")),
        "low-risk items cleared": _pct(pol.get("low_risk_clear_rate")),
        "leak rate": f"{_pct(pol.get('leak_rate'))} ({pol.get('leak_count', 'n/a')})",
        f"leak rate, {bound} bound": _pct(pol.get("leak_rate_upper")),
        "threat items cleared": (
            f"{_pct(pol.get('threat_cleared_rate'))} ({pol.get('threat_cleared_count', 'n/a')})"
        ),
        f"threat items cleared, {bound} bound": _pct(pol.get("threat_cleared_rate_upper")),
        "analyst load (REVIEW)": _pct(pol.get("analyst_load")),
        "inspect rate": _pct(pol.get("inspect_rate")),
    }
    for name, rec in (pol.get("threat_recall") or {}).items():
        cells[f"recall {name}"] = f"{_pct(rec.get('recall'))} (n={rec.get('n')})"
    for name, value in (report.get("auroc") or {}).items():
        cells[f"AUROC {name}"] = _num(value)
    for name, value in (report.get("ap") or {}).items():
        cells[f"AP {name}"] = _num(value)
    cells["macro AUROC"] = _num(report.get("macro_auroc"))
    cells["macro AP"] = _num(report.get("macro_ap"))
    return cells


def report_markdown(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """Side-by-side markdown table, one column per named report (e.g. challenger, champion).

    A metric one report lacks (a threat class the other taxonomy does not have)
    shows as n/a instead of dropping the row.
    """
    if not reports:
        raise ValueError("report_markdown needs at least one report")
    columns = {name: _rows(rep) for name, rep in reports.items()}
    labels: list[str] = []
    for cells in columns.values():
        labels += [label for label in cells if label not in labels]
    header = "| metric | " + " | ".join(columns) + " |"
    rule = "| --- |" + " --- |" * len(columns)
    body = [
        f"| {label} | " + " | ".join(c.get(label, "n/a") for c in columns.values()) + " |"
        for label in labels
    ]
    return "\n".join([header, rule, *body]) + "\n"
