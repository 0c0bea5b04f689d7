import numpy as np
from policy_synth import OUTPUTS

from atr.policy.calibration import calibrate_policy
from atr.policy.config import PolicyConfig
from atr.policy.scanner_coverage import scanner_coverage


def _concat(a, b):
    return (np.concatenate([a.scores, b.scores]), np.concatenate([a.paper_only, b.paper_only]),
            np.concatenate([a.threats, b.threats]))


def test_a_scanner_with_few_calibration_items_is_named_as_not_covered(synth):
    old, new = synth(4000, seed=1), synth(150, seed=2)
    # The new scanner's non-paper items look more like paper to the model (shifted up).
    new.scores[new.paper_only == 0, 0] = np.clip(new.scores[new.paper_only == 0, 0] + 0.45, 0, 1)
    scores, paper, threats = _concat(old, new)
    scanners = ["old"] * 4000 + ["new"] * 150
    cfg = PolicyConfig()
    policy = calibrate_policy(scores, paper, threats, OUTPUTS, cfg)

    evidence, warnings = scanner_coverage(scores, paper, threats.any(axis=1), scanners, policy,
                                          cfg)

    assert evidence["old"]["certified"] and evidence["old"]["n"] == 4000
    assert not evidence["new"]["certified"]
    assert evidence["new"]["n_nonpaper"] == int((new.paper_only == 0).sum())
    # Its leaks at the global threshold are counted, and its own bound is far above target.
    cleared_new = (new.scores[:, 0] >= policy.clear_threshold) & (new.paper_only == 0)
    assert evidence["new"]["leaks"] == int(cleared_new.sum()) > 0
    assert evidence["new"]["leak_rate_upper"] > cfg.leak_rate_target
    assert len(warnings) == 1 and "'new'" in warnings[0] and "598" in warnings[0]


def test_one_well_sampled_scanner_gets_no_warning(synth):
    calib = synth(4000, seed=3)
    policy = calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS)
    evidence, warnings = scanner_coverage(calib.scores, calib.paper_only,
                                          calib.threats.any(axis=1), ["a"] * 4000, policy,
                                          PolicyConfig())
    assert warnings == [] and evidence["a"]["certified"] and evidence["a"]["share"] == 1.0
    assert evidence["a"]["leaks"] == policy.calibration["clear"]["leaks"]
