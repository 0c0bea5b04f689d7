"""Multi-stage decision policy: CLEAR / REVIEW / INSPECT from the model's scores.

Only the serving-side names are re-exported here, so that `import atr.policy`
stays pure numpy (no scipy, matplotlib, torch, pandas). Calibration, safety
metrics and plots live in their own modules:

    atr.policy.decision       Decision, Policy (policy.json), Policy.decide
    atr.policy.config         PolicyConfig (conf/policy/*.yaml)
    atr.policy.calibration    calibrate_policy, InsufficientCalibrationError
    atr.policy.triage         the triage-only policy of a split too small to certify CLEAR
    atr.policy.evidence       recall rule and evidence shared by both
    atr.policy.safety_metrics policy_report
    atr.policy.bounds         clopper_pearson
    atr.policy.plots          plot_decision_confusion, plot_leak_vs_auto_clear
"""

from atr.policy.decision import Decision, Policy

__all__ = ["Decision", "Policy"]
