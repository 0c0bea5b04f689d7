import json
import math

import numpy as np
import pytest

from atr.policy.decision import Decision, Policy

OUTPUTS = ["paper_only", "knife", "firearm"]


def make_policy(**kw) -> Policy:
    args = dict(outputs=OUTPUTS, clear_threshold=0.9,
                inspect_thresholds={"knife": 0.5, "firearm": 0.6})
    return Policy(**{**args, **kw})


def test_rule_order_inspect_then_clear_then_review():
    scores = np.array([
        [0.95, 0.10, 0.10],  # confident paper, no threat
        [0.95, 0.55, 0.10],  # paper-looking but knife over threshold: INSPECT wins
        [0.95, 0.70, 0.90],  # both threats over: named after the higher score
        [0.50, 0.10, 0.10],  # unsure
        [0.90, 0.00, 0.00],  # exactly at the clear threshold clears
    ])
    decisions, reasons = make_policy().decide(scores)
    assert decisions == [Decision.CLEAR, Decision.INSPECT, Decision.INSPECT,
                         Decision.REVIEW, Decision.CLEAR]
    assert reasons == ["paper_only", "threat:knife", "threat:firearm", "uncertain", "paper_only"]


def test_clear_guard_sends_borderline_items_to_review():
    policy = make_policy(clear_guards={"knife": 0.2})
    decisions, reasons = policy.decide(np.array([[0.95, 0.3, 0.0], [0.95, 0.1, 0.3]]))
    assert decisions == [Decision.REVIEW, Decision.CLEAR]
    assert reasons[0] == "uncertain"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -0.1, 1.5])
def test_invalid_row_is_inspected_never_cleared(bad):
    scores = np.array([[0.99, 0.0, 0.0], [0.99, 0.0, bad], [0.99, 0.0, 0.0]])
    decisions, reasons = make_policy().decide(scores)
    assert decisions == [Decision.CLEAR, Decision.INSPECT, Decision.CLEAR]
    assert reasons[1] == "invalid_scores"


@pytest.mark.parametrize("scores,n", [
    (np.full((3, 2), 0.99), 3),        # too few columns
    (np.full((2, 4), 0.99), 2),        # too many columns
    (np.full(3, 0.99), 3),             # one row given flat
    (np.float64(0.99), 1),             # scalar
    ([[0.99, "x", 0.0]], 1),           # not numeric
    (None, 1),
])
def test_wrong_shape_or_type_is_inspected(scores, n):
    decisions, reasons = make_policy().decide(scores)
    assert decisions == [Decision.INSPECT] * n
    assert reasons == ["invalid_scores"] * n


def test_never_clearing_policy_clears_nothing_and_round_trips_as_null():
    policy = make_policy(clear_threshold=math.inf, warnings=["clears nothing"])
    decisions, _ = policy.decide(np.array([[1.0, 0.0, 0.0]]))
    assert decisions == [Decision.REVIEW]
    data = json.loads(policy.to_json())
    assert data["clear_threshold"] is None
    assert Policy.from_json(policy.to_json()).clears_nothing


def test_json_round_trip_is_plain_json_and_lossless():
    policy = make_policy(
        clear_guards={"firearm": 0.3},
        targets={"leak_rate_target": 0.005, "confidence": 0.95},
        calibration={"n": np.int64(1000), "clear": {"leak_rate_upper": np.float32(0.004)}},
    )
    text = policy.to_json()
    data = json.loads(text)  # strict parse
    assert data["format"] == "atr-policy" and data["version"] == 1
    assert data["outputs"] == OUTPUTS
    back = Policy.from_json(text)
    assert back.inspect_thresholds == policy.inspect_thresholds
    assert back.clear_guards == {"firearm": 0.3}
    assert back.calibration["n"] == 1000
    scores = np.random.default_rng(0).random((50, 3))
    assert back.decide(scores) == policy.decide(scores)


def test_save_and_load(tmp_path):
    path = make_policy().save(tmp_path / "policy.json")
    assert Policy.load(path).clear_threshold == 0.9


@pytest.mark.parametrize("change", [
    {"inspect_thresholds": {"knife": 0.5}},                     # firearm could never INSPECT
    {"outputs": ["knife", "paper_only", "firearm"]},
    {"clear_guards": {"sword": 0.2}},
    {"inspect_thresholds": {"knife": float("nan"), "firearm": 0.6}},
])
def test_incomplete_policy_refused(change):
    with pytest.raises(ValueError):
        make_policy(**change)


def test_unknown_format_refused():
    data = json.loads(make_policy().to_json())
    data["version"] = 99
    with pytest.raises(ValueError, match="version"):
        Policy.from_dict(data)


def test_serving_import_stays_light():
    # Serving imports the decision rule; it must not drag in training or analysis stacks.
    import subprocess
    import sys

    code = ("import sys, atr.policy.decision; "
            "print([m for m in ('scipy', 'torch', 'pandas', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
