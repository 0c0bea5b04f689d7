"""Per-scanner clear thresholds at calibration time (atr.policy.scanner_thresholds): a
scanner whose own items just miss the global bound gets its own stricter threshold, and
is then certified by the coverage evidence; a scanner with too few items gets none."""

from __future__ import annotations

import numpy as np
from policy_synth import OUTPUTS, THREATS

from atr.policy.config import PolicyConfig
from atr.policy.decision import Policy
from atr.policy.scanner_coverage import scanner_coverage
from atr.policy.scanner_thresholds import certify_scanner_thresholds


def test_an_uncovered_scanner_gets_its_own_stricter_threshold() -> None:
    rng = np.random.default_rng(3)
    # scanner a: 2 000 non-paper items, 5 of them scored 0.80-0.85 (leaks at 0.78), 2 000
    # paper items at 0.75-1; scanner b: 300 + 300, no leak
    low = np.concatenate([rng.uniform(0, 0.7, 1995), np.linspace(0.80, 0.85, 5),
                          rng.uniform(0.75, 1.0, 2000), rng.uniform(0, 0.5, 300),
                          rng.uniform(0.8, 1.0, 300)])
    truth = np.concatenate([np.zeros(2000), np.ones(2000), np.zeros(300), np.ones(300)])
    ids = ["a"] * 4000 + ["b"] * 600
    scores = np.column_stack([low, np.full((len(low), len(THREATS)), 0.01)])
    threat = np.zeros(len(low), dtype=bool)
    cfg = PolicyConfig.from_dict({"leak_rate_target": 0.005, "confidence": 0.95})
    policy = Policy(outputs=OUTPUTS, clear_threshold=0.78,
                    inspect_thresholds=dict.fromkeys(THREATS, 0.9))
    coverage, _ = scanner_coverage(scores, truth, threat, ids, policy, cfg)
    assert coverage["a"]["leaks"] == 5 and not coverage["a"]["certified"]
    found = certify_scanner_thresholds(scores, truth, threat, ids, policy, cfg, coverage)
    assert list(found) == ["a"]  # b: 300 non-paper items cannot certify anything
    assert 0.80 < found["a"] <= 0.85 and policy.scanner_clear_thresholds == found
    coverage, warnings = scanner_coverage(scores, truth, threat, ids, policy, cfg)
    assert coverage["a"]["certified"] and coverage["a"]["leaks"] == 4
    assert not coverage["b"]["certified"] and any("'b'" in w for w in warnings)
    # a's items above the global threshold but under its own are no longer cleared
    row = np.array([[0.79, *[0.01] * len(THREATS)]] * 2)
    assert [str(d) for d in policy.decide(row, ["a", "b"])[0]] == ["REVIEW", "CLEAR"]
