"""The challenger-vs-champion gate on a simulated gold set and frontline batch (real MLflow)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from atr.evaluation import gate_rules as rules
from atr.evaluation.gate import gate, newest_frontline_batch
from atr.package.checksums import package_checksums
from atr.registry.approve import approve
from atr.registry.register import register_package

NAME = "atr-screening"


def _register(registry_cfg, new_package, policy_warnings: list[str] | None = None,
              policy_changes: dict | None = None, low_risk: str | None = None) -> None:
    pkg = new_package(registry_cfg("register"))
    policy = json.loads((pkg / "policy.json").read_text())
    if policy_warnings:  # as calibration writes them (e.g. a scanner the bound misses)
        policy["warnings"] = policy_warnings
    policy.update(policy_changes or {})
    if low_risk:  # the same network, its first output read under another definition
        taxonomy = json.loads((pkg / "taxonomy.json").read_text())
        (pkg / "taxonomy.json").write_text(json.dumps({**taxonomy, "low_risk": low_risk}))
        policy["outputs"][0] = policy["low_risk"] = low_risk
    (pkg / "policy.json").write_text(json.dumps(policy))
    manifest = json.loads((pkg / "package.json").read_text())
    sums = package_checksums(pkg)
    manifest["sha256"].update({f: sums[f] for f in ("policy.json", "taxonomy.json")})
    (pkg / "package.json").write_text(json.dumps(manifest))
    register_package(pkg, registry_cfg("register", f"register.eval_dir={pkg / 'artifacts/eval'}"))


def test_gate_reports_on_version_and_never_moves_aliases(
    registry_cfg, new_package, tiny_dataset: Path, tmp_path: Path
) -> None:
    frontline = tmp_path / "frontline"
    shutil.copytree(tiny_dataset, frontline / "batch-001")
    gate_args = ("gate", f"gate.gold_dataset={tiny_dataset}", f"gate.frontline_dir={frontline}",
                 "gate.leak_target=0.5")
    _register(registry_cfg, new_package)

    alone = gate(registry_cfg(*gate_args))
    assert alone["verdict"] == rules.NO_CHAMPION
    assert set(alone["datasets"]) == {"gold", "frontline"}
    client = MlflowClient()
    v1 = client.get_model_version(NAME, "1")
    assert "| metric | challenger v1 |" in v1.description
    assert v1.tags["gate.verdict"] == "no-champion"
    assert v1.tags["gate.gold.n"] == str(int((_split(tiny_dataset) == "test").sum()))
    assert v1.tags["gate.frontline.n"] == "120"  # frontline batches are scored whole

    assert v1.tags["gate.policy_warnings"] == "0" and "Policy warnings" not in v1.description
    assert (v1.tags["gate.policy_mode"], v1.tags["gate.low_risk"]) == ("certified", "paper_only")
    assert "**Low risk (CLEAR evidence): `paper_only`**" in v1.description

    approve(registry_cfg("approve"), version=1, by="alice")
    uncovered = "scanner 'parcel_140kv': 65 non-paper-only calibration items (3% of the split)"
    _register(registry_cfg, new_package, [uncovered])
    result = gate(registry_cfg(*gate_args))
    v2 = client.get_model_version(NAME, "2")
    # The reviewer sees calibration warnings first, above the tables.
    assert v2.tags["gate.policy_warnings"] == "1"
    assert v2.description.index(uncovered) < v2.description.index("| metric |")
    assert result["champion"] == 1 and result["challenger"] == 2
    assert "| metric | challenger v2 | champion v1 |" in v2.description
    # Same network weights and thresholds in both versions, so every figure ties and, by
    # gate_rules, the Fisher test finds no extra leaks (p >= 0.5) and the auto-clear rates
    # tie: a set is `worse` only if the model clears a threat item, `mixed` if it is over
    # the leak target (0.5 here), `better` otherwise; overall follows from the sets.
    expected = {}
    for label in ("gold", "frontline"):
        figures = {k: v2.tags[f"gate.{label}.{k}"] for k in
                   ("n", "auto_clear_rate", "leak_count", "leak_rate", "threat_cleared_count")}
        assert figures == {k: v2.tags[f"gate.{label}.champion.{k}"] for k in figures}
        over_target = (figures["leak_rate"] != "n/a" and float(figures["leak_rate"]) > 0.5) or (
            figures["leak_rate"] == "n/a" and int(figures["leak_count"]) > 0)
        expected[label] = (rules.WORSE if int(figures["threat_cleared_count"]) > 0
                           else rules.MIXED if over_target else rules.BETTER)
    assert result["datasets"] == expected
    assert v2.tags["gate.verdict"] == result["verdict"] == (
        rules.WORSE if rules.WORSE in expected.values()
        else rules.BETTER if set(expected.values()) == {rules.BETTER} else rules.MIXED)
    assert v2.tags["gate.champion_version"] == "1"
    assert {"gate.gold.auto_clear_rate", "gate.gold.champion.leak_rate_upper",
            "gate.frontline.verdict"} <= set(v2.tags)
    # Same network weights in both versions: same figures, so not worse on safety.
    assert v2.tags["gate.gold.leak_count"] == v2.tags["gate.gold.champion.leak_count"]
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "2"


def test_gate_shows_triage_first_and_the_low_risk_definitions(
    registry_cfg, new_package, tiny_dataset: Path, tmp_path: Path
) -> None:
    gate_args = ("gate", f"gate.gold_dataset={tiny_dataset}",
                 f"gate.frontline_dir={tmp_path / 'none'}")
    _register(registry_cfg, new_package)
    approve(registry_cfg("approve"), version=1, by="alice")
    triage = ("TRIAGE ONLY: this policy never CLEARs (threats go to INSPECT, everything else "
              "to REVIEW); certifying CLEAR under low risk = no_threat needs at least 586 more "
              "labelled non-low-risk (no_threat=0) items")
    uncovered = "scanner 'parcel_140kv': 12 non-low-risk calibration items"
    # As written by calibration on a small archive, but listed out of order on purpose.
    _register(registry_cfg, new_package, [uncovered, triage],
              {"mode": "triage_only", "clear_threshold": None}, low_risk="no_threat")
    result = gate(registry_cfg(*gate_args))

    v2 = MlflowClient().get_model_version(NAME, "2")
    text = v2.description
    assert result["champion"] == 1 and v2.tags["gate.policy_warnings"] == "2"
    assert v2.tags["gate.policy_mode"] == "triage_only"
    assert (v2.tags["gate.low_risk"], v2.tags["gate.champion.low_risk"]) == (
        "no_threat", "paper_only")
    # The triage warning is the first thing under the title, before any other warning,
    # the definitions, the verdict and the tables.
    body = text.split("\n\n", 1)[1]
    assert body.startswith("**Policy warnings (from calibration):**\n\n- TRIAGE ONLY")
    assert (text.index(triage) < text.index(uncovered) < text.index("**Low risk")
            < text.index("**Verdict") < text.index("| metric |"))
    assert ("**Low risk (CLEAR evidence): `no_threat`**, policy mode `triage_only` "
            "(challenger v2); champion v1: `paper_only`, `certified`") in text
    assert "The definitions differ" in text
    # The tables name each version's definition and mode; the triage version clears nothing.
    assert "| low risk (CLEAR evidence) | no_threat | paper_only |" in text
    assert "| policy mode | TRIAGE ONLY (never clears) | certified |" in text
    assert v2.tags["gate.gold.auto_clear_rate"] == "0"


def _split(dataset: Path):
    import pandas as pd

    return pd.read_parquet(dataset / "manifest.parquet")["split"]


def test_newest_frontline_batch_is_picked_by_manifest_time(tmp_path: Path) -> None:
    assert newest_frontline_batch(tmp_path / "absent") is None
    for i, name in enumerate(["2024-05", "2024-04", "no-manifest"]):
        (tmp_path / name).mkdir()
        if name != "no-manifest":
            (tmp_path / name / "manifest.parquet").write_bytes(b"x")
            os.utime(tmp_path / name / "manifest.parquet", (1000 + i, 1000 + i))
    assert newest_frontline_batch(tmp_path) == tmp_path / "2024-04"


def _report(auto_clear: float, leaks: int, non_paper: int = 1000, threats_cleared: int = 0):
    return {"policy": {"auto_clear_rate": auto_clear, "leak_count": leaks,
                       "leak_rate": leaks / non_paper if non_paper else None,
                       "n_goods": non_paper, "n_threat": 0,
                       "threat_cleared_count": threats_cleared}}


@pytest.mark.parametrize(
    ("challenger", "champion", "expected"),
    [
        (_report(0.50, 0), _report(0.45, 0), rules.BETTER),
        (_report(0.445, 0), _report(0.45, 0), rules.BETTER),  # within margin
        (_report(0.30, 0), _report(0.45, 0), rules.MIXED),  # safe, clears less
        (_report(0.60, 8), _report(0.45, 0), rules.WORSE),  # over the target
        (_report(0.60, 0, threats_cleared=1), _report(0.4, 0), rules.WORSE),
        # one leak in a small frontline batch: within target, not significantly more than
        # a champion that clears nothing -> the challenger that clears is better
        (_report(0.19, 1, non_paper=650), _report(0.0, 0, non_paper=650), rules.BETTER),
        # both over the target, the challenger not significantly worse -> mixed
        (_report(0.60, 7, non_paper=1000), _report(0.45, 6, non_paper=1000), rules.MIXED),
        # within the target but significantly more leaks than the champion -> worse
        (_report(0.60, 4, non_paper=1000), _report(0.45, 0, non_paper=5000), rules.WORSE),
        (_report(0.60, 0), None, rules.NO_CHAMPION),
    ],
)
def test_dataset_verdict_rule(challenger, champion, expected) -> None:
    assert rules.dataset_verdict(challenger, champion, 0.005, 0.01) == expected


def test_overall_verdict() -> None:
    assert rules.overall_verdict({"gold": "better", "frontline": "better"}) == "better"
    assert rules.overall_verdict({"gold": "better", "frontline": "worse"}) == "worse"
    assert rules.overall_verdict({"gold": "better", "frontline": "mixed"}) == "mixed"
    assert rules.overall_verdict({"gold": "no-champion"}) == "no-champion"
