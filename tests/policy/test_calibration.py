import numpy as np
import pytest
from policy_synth import NONPAPER_PAPER_SCORE, OUTPUTS, THREAT_POSITIVE_SCORE

from atr.policy.calibration import (
    InsufficientCalibrationError,
    calibrate_policy,
    fixed_sequence_passes,
    inspect_threshold,
)
from atr.policy.config import PolicyConfig
from atr.policy.decision import Decision, Policy
from atr.policy.safety_metrics import policy_report


def test_calibrated_policy_meets_leak_bound_on_fresh_holdout(synth):
    calib = synth(4000, seed=1)
    policy = calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS)
    evidence = policy.calibration["clear"]
    assert evidence["leak_rate_upper"] <= 0.005 and evidence["threats_cleared"] == 0
    assert not policy.warnings and 0.0 < policy.clear_threshold < 1.0
    assert policy.mode == "certified" and policy.low_risk == "paper_only"
    assert policy.calibration["low_risk"] == "paper_only"
    assert evidence["low_risk_clear_rate"] == evidence["paper_only_clear_rate"] > 0.8

    fresh = synth(200_000, seed=2)
    report = policy_report(policy, fresh.scores, fresh.paper_only, fresh.threats)
    assert report["leak_rate"] <= 0.005
    # The analytic leak rate at the chosen threshold (ignoring INSPECT, so an overstatement).
    assert NONPAPER_PAPER_SCORE.sf(policy.clear_threshold) <= 0.005
    # Not a vacuous policy: most paper-only items are released automatically.
    assert report["paper_only_clear_rate"] > 0.8


def test_leak_bound_holds_across_repeated_calibrations(synth):
    # The bound's promise is over calibration draws: P(true leak <= target) >= 95%.
    # Threat clearing is left unconstrained so that only the statistical bound decides.
    cfg = {"max_threat_cleared": 10**6}
    true_leaks = []
    for seed in range(40):
        calib = synth(3000, seed=100 + seed)
        policy = calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS, cfg)
        true_leaks.append(NONPAPER_PAPER_SCORE.sf(policy.clear_threshold))
    true_leaks = np.array(true_leaks)
    assert np.mean(true_leaks <= 0.005) >= 0.9
    # ...and not trivially conservative: ~1500 non-paper items allow 2 leaks, which lands
    # the typical true rate within a small factor of the target.
    assert np.median(true_leaks) > 0.001


REFUSE = {"on_insufficient": "error"}


def test_too_small_calibration_set_is_refused_with_counts(synth):
    calib = synth(800, seed=3)
    n_nonpaper = int((calib.paper_only == 0).sum())
    assert n_nonpaper < 598
    with pytest.raises(InsufficientCalibrationError) as err:
        calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS, REFUSE)
    assert f"{n_nonpaper} non-low-risk (paper_only=0) items" in str(err.value)
    assert "at least 598" in str(err.value)
    assert (err.value.n_nonpaper, err.value.needed_nonpaper) == (n_nonpaper, 598)


def test_threat_class_with_too_few_positives_is_refused_by_name(synth):
    calib = synth(3000, seed=4)
    firearm = np.flatnonzero(calib.threats[:, 1])
    calib.threats[firearm[5:], 1] = 0  # those items become plain goods
    with pytest.raises(InsufficientCalibrationError, match="'firearm' has 5 positive items"):
        calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS, REFUSE)
    lenient = {"min_threat_positives": 5, **REFUSE}
    policy = calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS, lenient)
    assert policy.mode == "certified" and not policy.clears_nothing


def test_recall_targets_met_including_per_class_override(synth):
    calib = synth(4000, seed=5)
    cfg = PolicyConfig(threat_recall_targets={"knife": 0.99})
    policy = calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS, cfg)
    decisions, _ = policy.decide(calib.scores)
    inspected = np.array(decisions) == Decision.INSPECT
    for j, (name, target) in enumerate([("knife", 0.99), ("firearm", 0.95)]):
        positives = calib.threats[:, j] == 1
        assert inspected[positives].mean() >= target
        evidence = policy.calibration["threats"][name]
        assert evidence["recall"] >= target > evidence["recall_lower"]
        assert policy.targets["threat_recall_targets"][name] == target
    default = calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS)
    assert policy.inspect_thresholds["knife"] < default.inspect_thresholds["knife"]


def test_inspect_threshold_is_the_largest_meeting_the_target():
    scores = np.linspace(0.0, 0.9, 10)  # 0.0, 0.1, ..., 0.9
    assert inspect_threshold(scores, 0.8) == pytest.approx(0.2)  # 8 of 10 at or above
    assert inspect_threshold(scores, 0.81) == pytest.approx(0.1)
    assert inspect_threshold(np.full(100, 0.5), 0.95) == 0.5
    # Float edge: 0.95 * 100 must ask for 95 hits, not 96.
    assert inspect_threshold(np.arange(100) / 100, 0.95) == pytest.approx(0.05)


def test_fixed_sequence_stops_at_first_failure():
    assert fixed_sequence_passes([True, True, False, True, True]) == 2
    assert fixed_sequence_passes([False, True]) == 0
    assert fixed_sequence_passes([True, True]) == 2
    assert fixed_sequence_passes([]) == 0


def _crafted_set(top_item: str, n_goods: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Goods (paper score 0.1), 700 paper (0.9), threats at INSPECT, one crafted top item.

    The top item is one leak: with 1000 goods its bound passes (CP(1, 1061) < 0.005),
    with 700 it fails (CP(1, 761) > 0.005).
    """
    rows, paper, threats = [], [], []
    for _ in range(n_goods):
        rows.append([0.1, 0.0, 0.0]), paper.append(0), threats.append([0, 0])
    for _ in range(700):
        rows.append([0.9, 0.0, 0.0]), paper.append(1), threats.append([0, 0])
    for j in range(2):
        for _ in range(30):
            rows.append([0.05, 0.9 * (j == 0), 0.9 * (j == 1)]), paper.append(0)
            threats.append([int(j == 0), int(j == 1)])
    # The strictest candidate: a knife the model misses (below the knife threshold), or goods.
    rows.append([0.99, 0.01, 0.0]), paper.append(0)
    threats.append([1, 0] if top_item == "threat" else [0, 0])
    return np.array(rows), np.array(paper), np.array(threats)


@pytest.mark.parametrize("top_item,n_goods,failed", [
    ("threat", 1000, ["threat_cleared"]),
    ("goods", 700, ["leak_bound"]),
    ("threat", 700, ["leak_bound", "threat_cleared"]),
])
def test_failure_at_strictest_threshold_gives_a_policy_that_clears_nothing(
    top_item, n_goods, failed
):
    scores, paper, threats = _crafted_set(top_item, n_goods)
    policy = calibrate_policy(scores, paper, threats, OUTPUTS)
    assert policy.clears_nothing and policy.warnings
    stop = policy.calibration["clear"]["stopped_at"]
    assert stop["threshold"] == 0.99 and stop["failed"] == failed
    # The lenient 0.9 would clear 700 paper items, but the walk never gets there.
    assert Decision.CLEAR not in policy.decide(scores)[0]
    assert Policy.from_json(policy.to_json()).clears_nothing


def test_tolerated_failure_continues_down_to_the_paper_items():
    scores, paper, threats = _crafted_set("threat", 1000)
    policy = calibrate_policy(scores, paper, threats, OUTPUTS, {"max_threat_cleared": 1})
    assert policy.clear_threshold == 0.9
    assert policy.calibration["clear"]["stopped_at"]["threshold"] == 0.1


def test_bad_inputs_rejected(synth):
    calib = synth(2000, seed=6)
    nan_scores = calib.scores.copy()
    nan_scores[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        calibrate_policy(nan_scores, calib.paper_only, calib.threats, OUTPUTS)
    both = calib.paper_only.copy()
    both[np.flatnonzero(calib.threats[:, 0])[0]] = 1
    with pytest.raises(ValueError, match="inconsistent"):
        calibrate_policy(calib.scores, both, calib.threats, OUTPUTS)
    with pytest.raises(ValueError, match="unknown threat"):
        calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS,
                         {"threat_recall_targets": {"sword": 0.9}})
    with pytest.raises(ValueError, match="N x 3"):
        calibrate_policy(calib.scores[:, :2], calib.paper_only, calib.threats, OUTPUTS)
    with pytest.raises(ValueError, match="start with one of"):
        calibrate_policy(calib.scores, calib.paper_only, calib.threats,
                         ["low_risk", *OUTPUTS[1:]])
    with pytest.raises(ValueError, match="empty"):
        calibrate_policy(calib.scores[:0], calib.paper_only[:0], calib.threats[:0], OUTPUTS)


def test_synthetic_recall_distribution_sanity():
    # Guards the fixture itself: positives score high enough for 95% recall to be reachable.
    assert THREAT_POSITIVE_SCORE.sf(0.3) > 0.95
