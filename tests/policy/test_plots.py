from policy_synth import OUTPUTS

from atr.policy.calibration import calibrate_policy
from atr.policy.plots import (
    leak_vs_auto_clear,
    plot_decision_confusion,
    plot_leak_vs_auto_clear,
)
from atr.policy.safety_metrics import policy_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plots_written_as_png(synth, tmp_path):
    calib, test = synth(3000, seed=7), synth(3000, seed=8)
    policy = calibrate_policy(calib.scores, calib.paper_only, calib.threats, OUTPUTS)
    report = policy_report(policy, test.scores, test.paper_only, test.threats)

    heatmap = plot_decision_confusion(report, tmp_path / "plots" / "confusion.png")
    curve_png = plot_leak_vs_auto_clear(
        policy, test.scores, test.paper_only, test.threats, tmp_path / "leak.png"
    )
    for path in (heatmap, curve_png):
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_curve_is_monotone_and_passes_through_the_policy(synth):
    sample = synth(2000, seed=9)
    calib = calibrate_policy(sample.scores, sample.paper_only, sample.threats, OUTPUTS)
    curve = leak_vs_auto_clear(calib, sample.scores, sample.paper_only, sample.threats)
    assert (curve["leak_rate"][1:] >= curve["leak_rate"][:-1]).all()  # monotone sweep
    at_policy = curve["threshold"] == calib.clear_threshold
    assert curve["auto_clear_rate"][at_policy][0] == calib.calibration["clear"]["auto_clear_rate"]
