"""The low-risk definition as configuration: a policy calibrated under `no_threat`."""

import json

import numpy as np
import pytest
from policy_synth import NONPAPER_PAPER_SCORE, OUTPUTS, OUTPUTS_NO_THREAT, make_no_threat_sample

from atr.policy.calibration import calibrate_policy
from atr.policy.decision import Decision, Policy
from atr.policy.plots import leak_vs_auto_clear, plot_decision_confusion
from atr.policy.safety_metrics import policy_report


def test_no_threat_policy_certifies_the_leak_bound_with_the_no_threat_truth(tmp_path):
    calib = make_no_threat_sample(4000, seed=1)
    policy = calibrate_policy(calib.scores, calib.no_threat, calib.threats, OUTPUTS_NO_THREAT)
    assert policy.low_risk == "no_threat" and policy.mode == "certified"
    assert not policy.warnings
    evidence = policy.calibration["clear"]
    assert evidence["leak_rate_upper"] <= 0.005 and evidence["threats_cleared"] == 0
    assert policy.calibration["low_risk"] == "no_threat"
    assert policy.calibration["n_not_low_risk"] == int((calib.no_threat == 0).sum())
    # The true leak rate at the chosen threshold, over items that are not no_threat.
    assert NONPAPER_PAPER_SCORE.sf(policy.clear_threshold) <= 0.005

    fresh = make_no_threat_sample(200_000, seed=2)
    report = policy_report(policy, fresh.scores, fresh.no_threat, fresh.threats)
    assert report["low_risk"] == "no_threat" and report["policy_mode"] == "certified"
    assert report["leak_rate"] <= 0.005 and report["threat_cleared_rate"] <= 0.005
    assert report["n_not_low_risk"] == int((fresh.no_threat == 0).sum())
    assert list(report["confusion"]) == ["no_threat", "unverified", "threat"]
    assert report["low_risk_clear_rate"] == report["paper_only_clear_rate"] > 0.8
    # Goods are low risk under this definition: most of them are released.
    decided = np.array([str(d) for d in policy.decide(fresh.scores)[0]])
    goods = (fresh.no_threat == 1) & (fresh.paper_only == 0)
    assert (decided[goods] == "CLEAR").mean() > 0.8
    assert plot_decision_confusion(report, tmp_path / "c.png").stat().st_size > 1000

    # Judged on the paper-only truth, the cleared goods would be leaks: that definition
    # certifies a far stricter threshold (or none) on the same scores.
    strict = calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS)
    assert strict.low_risk == "paper_only"
    assert strict.clear_threshold > policy.clear_threshold


def test_leak_curve_counts_leaks_against_the_policys_definition():
    sample = make_no_threat_sample(3000, seed=3)
    policy = calibrate_policy(sample.scores, sample.no_threat, sample.threats,
                              OUTPUTS_NO_THREAT)
    curve = leak_vs_auto_clear(policy, sample.scores, sample.no_threat, sample.threats)
    at = curve["threshold"] == policy.clear_threshold
    assert curve["leak_rate"][at][0] == pytest.approx(
        policy.calibration["clear"]["leaks"] / policy.calibration["n_not_low_risk"], abs=0.002)


def test_no_threat_policy_json_names_its_definition_and_clear_reason():
    policy = Policy(OUTPUTS_NO_THREAT, clear_threshold=0.8,
                    inspect_thresholds={"knife": 0.5, "firearm": 0.5})
    data = json.loads(policy.to_json())
    assert data["low_risk"] == "no_threat" and data["mode"] == "certified"
    back = Policy.from_dict(data)
    assert back.low_risk == "no_threat"
    decisions, reasons = back.decide(np.array([[0.9, 0.1, 0.1], [0.9, 0.6, 0.1]]))
    assert decisions == [Decision.CLEAR, Decision.INSPECT]
    assert reasons == ["no_threat", "threat:knife"]
    with pytest.raises(ValueError, match="low_risk"):
        Policy.from_dict({**data, "low_risk": "paper_only"})  # contradicts its outputs


def test_policy_json_from_before_modes_and_definitions_still_loads():
    old = {"format": "atr-policy", "version": 1, "outputs": OUTPUTS, "clear_threshold": 0.9,
           "inspect_thresholds": {"knife": 0.5, "firearm": 0.6}, "warnings": []}
    policy = Policy.from_dict(old)
    assert policy.mode == "certified" and policy.low_risk == "paper_only"
    assert policy.decide(np.array([[0.95, 0.0, 0.0]]))[1] == ["paper_only"]
