"""Triage-only policies: what calibration returns when the split cannot certify CLEAR."""

import math

import numpy as np
import pytest
from policy_synth import OUTPUTS

from atr.policy.calibration import calibrate_policy, inspect_threshold
from atr.policy.config import PolicyConfig
from atr.policy.decision import Decision, Policy
from atr.policy.scanner_coverage import scanner_coverage
from atr.policy.triage import triage_inspect_threshold


def test_small_split_gives_a_triage_policy_that_says_why_first(synth, tmp_path):
    calib = synth(800, seed=3)
    n_nonpaper = int((calib.paper_only == 0).sum())
    assert n_nonpaper < 598
    policy = calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS)

    assert policy.mode == "triage_only" and policy.triage_only and policy.clears_nothing
    clear = policy.calibration["clear"]
    assert clear["more_items_to_certify"] == 598 - n_nonpaper
    assert clear["threshold"] is None and clear["certified"] is False
    first = policy.warnings[0]
    assert first.startswith("TRIAGE ONLY") and "never CLEARs" in first
    assert f"{n_nonpaper} non-low-risk (paper_only=0) items" in first and "598" in first
    assert f"at least {598 - n_nonpaper} more labelled non-low-risk" in first
    # Well-sampled threat classes keep the certified recall rule.
    for j, name in enumerate(OUTPUTS[1:]):
        positives = calib.threats[:, j] == 1
        assert policy.calibration["threats"][name]["rule"] == "recall_target"
        assert policy.inspect_thresholds[name] == inspect_threshold(
            calib.scores[positives, 1 + j], 0.95)

    back = Policy.load(policy.save(tmp_path / "policy.json"))
    assert back.mode == "triage_only" and back.warnings[0] == first
    assert back.decide(calib.scores) == policy.decide(calib.scores)


def test_triage_policy_never_clears_whatever_the_scores(synth):
    calib = synth(800, seed=3)
    policy = calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS)
    rng = np.random.default_rng(0)
    extremes = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    scores = np.vstack([rng.random((20_000, 3)), rng.beta(0.2, 0.2, (20_000, 3)), extremes])
    decisions, reasons = policy.decide(scores)
    decided = np.array([str(d) for d in decisions])
    assert Decision.CLEAR.value not in decided
    inspect_at = np.array([policy.inspect_thresholds[t] for t in policy.threats])
    threat = np.any(scores[:, 1:] >= inspect_at, axis=1)
    # Threats go to INSPECT first, everything else to REVIEW.
    assert (decided[threat] == "INSPECT").all() and (decided[~threat] == "REVIEW").all()
    assert set(np.array(reasons)[~threat]) == {"uncertain"}
    # Even a threshold forced open after loading cannot make a triage policy clear...
    policy.clear_threshold = 0.0
    assert Decision.CLEAR not in policy.decide(scores)[0]
    # ...and a triage policy.json with a clear threshold is refused outright.
    with pytest.raises(ValueError, match="triage_only policy never clears"):
        Policy(OUTPUTS, 0.9, {"knife": 0.5, "firearm": 0.5}, mode="triage_only")


def test_inspect_threshold_of_classes_with_too_few_positives():
    cfg = PolicyConfig(min_threat_positives=10, triage_inspect_threshold=0.5)
    assert triage_inspect_threshold(np.array([]), 0.95, cfg) == (0.5, "fallback")
    # Three lucky positives would set 0.9: the cap keeps the class at least as sensitive.
    assert triage_inspect_threshold(np.array([0.9, 0.95, 0.99]), 0.95, cfg) == (
        0.5, "recall_target_capped")
    # Below the cap the positives' own rule stands (more sensitive still).
    assert triage_inspect_threshold(np.array([0.3, 0.8]), 0.95, cfg) == (
        0.3, "recall_target_capped")
    many = np.linspace(0.6, 0.99, 20)
    assert triage_inspect_threshold(many, 0.95, cfg) == (
        inspect_threshold(many, 0.95), "recall_target")


def test_a_short_threat_class_alone_gives_triage_with_what_it_lacks(synth):
    calib = synth(3000, seed=4)
    firearm = np.flatnonzero(calib.threats[:, 1])
    calib.threats[firearm[5:], 1] = 0  # the rest become plain goods
    calib.scores[firearm[:5], 2] = [0.92, 0.95, 0.97, 0.98, 0.99]  # few, and high by luck
    calib.threats[:, 0] = 0  # no knife at all in this split
    policy = calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS)

    assert policy.triage_only and policy.clears_nothing
    clear = policy.calibration["clear"]
    assert clear["more_items_to_certify"] == 0
    assert clear["more_positives_to_certify"] == {"knife": 10, "firearm": 5}
    assert "more positives of threat class(es) 'knife' +10, 'firearm' +5" in policy.warnings[0]
    evidence = policy.calibration["threats"]
    assert evidence["knife"]["rule"] == "fallback" and evidence["knife"]["recall"] is None
    assert policy.inspect_thresholds == {"knife": 0.5, "firearm": 0.5}
    assert evidence["firearm"]["rule"] == "recall_target_capped"
    assert evidence["firearm"]["n_positive"] == 5 and evidence["firearm"]["recall"] == 1.0
    # A firearm scoring 0.6 -- below what the five seen would have set -- still goes to INSPECT.
    decisions, reasons = policy.decide(np.array([[0.99, 0.0, 0.6], [0.99, 0.55, 0.0]]))
    assert decisions == [Decision.INSPECT, Decision.INSPECT]
    assert reasons == ["threat:firearm", "threat:knife"]


def test_refusing_instead_of_triage_is_a_setting(synth):
    from atr.policy.calibration import InsufficientCalibrationError

    calib = synth(800, seed=3)
    with pytest.raises(InsufficientCalibrationError, match="598"):
        calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS,
                         {"on_insufficient": "error"})


def test_scanner_coverage_reports_a_triage_policy_without_certifying_it(synth):
    calib = synth(800, seed=5)
    scanners = ["a"] * 500 + ["b"] * 300
    cfg = PolicyConfig()
    policy = calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS, cfg)
    assert policy.triage_only
    evidence, warnings = scanner_coverage(calib.scores, calib.paper_only,
                                          calib.threats.any(axis=1), scanners, policy, cfg)
    assert warnings == []  # the triage warning already says that nothing is certified
    assert set(evidence) == {"a", "b"} and evidence["a"]["n"] == 500
    for scanner, rows in (("a", slice(0, 500)), ("b", slice(500, 800))):
        e = evidence[scanner]
        assert e["leaks"] == 0 and e["threats_cleared"] == 0 and not e["certified"]
        assert e["n_nonpaper"] == int((calib.paper_only[rows] == 0).sum())
        assert e["low_risk_clear_rate"] == 0.0 and not math.isnan(e["leak_rate_upper"])
