"""Calibrating the decision policy's thresholds on a held-out calibration split.

Two kinds of threshold, two kinds of claim:

* inspect thresholds, one per threat class: the largest score threshold whose
  recall (share of that class's items reaching INSPECT) on the calibration set
  meets the class's target. Recall and its one-sided Clopper–Pearson lower
  bound are reported; the threshold is chosen on the same data, so the bound
  describes the calibration set rather than guaranteeing future recall.
* the clear threshold on the low-risk score (the model's first output: `paper_only` or
  `no_threat`, the taxonomy's `low_risk` definition), with a guarantee: with
  probability >= `confidence` the leak rate (share of items that are not low risk
  CLEARed) is <= `leak_rate_target`. See `search_clear_threshold`.

A split too small for these claims gives a triage-only policy (atr.policy.triage) or,
with `policy.on_insufficient: error`, an `InsufficientCalibrationError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from atr.policy.bounds import clopper_pearson, clopper_pearson_upper_many
from atr.policy.config import PolicyConfig
from atr.policy.decision import Policy
from atr.policy.evidence import inspect_threshold, policy_targets, recall_evidence, split_counts
from atr.policy.taxonomy import LOW_RISK_DEFINITIONS
from atr.policy.triage import calibration_shortfall, triage_policy

__all__ = ["InsufficientCalibrationError", "calibrate_policy", "fixed_sequence_passes",
           "inspect_threshold", "search_clear_threshold"]

METHOD = (
    "fixed-sequence testing (Learn-then-Test) over low-risk score thresholds from strict to "
    "lenient, stopping at the first failure; one-sided Clopper-Pearson upper bound on the "
    "leak rate"
)


class InsufficientCalibrationError(ValueError):
    """The calibration set is too small to support the claims the policy would make."""

    def __init__(self, problems: Sequence[str], n_nonpaper: int, needed_nonpaper: int,
                 short_classes: Mapping[str, int]) -> None:
        super().__init__("insufficient calibration set: " + "; ".join(problems))
        self.n_nonpaper = n_nonpaper
        self.needed_nonpaper = needed_nonpaper
        self.short_classes = dict(short_classes)


def calibrate_policy(
    scores: ArrayLike,
    truth_low_risk: ArrayLike,
    truth_threats: ArrayLike,
    outputs: Sequence[str],
    cfg: PolicyConfig | Mapping[str, Any] | None = None,
) -> Policy:
    """Calibrate a `Policy` on a held-out split: scores N x K in `outputs` order, truths 0/1.

    `truth_low_risk` is the manifest column named outputs[0] (`paper_only` or
    `no_threat`: 1 = positive evidence of low risk); `truth_threats` is N x T with
    T = K - 1 columns in the order of outputs[1:]. When the split cannot support the
    leak bound or a recall claim the result is a triage-only policy (never CLEARs), or
    with `on_insufficient: error` an `InsufficientCalibrationError`; never a policy
    that overstates them.
    """
    cfg = cfg if isinstance(cfg, PolicyConfig) else PolicyConfig.from_dict(cfg)
    s, low, threat_truth = _validated(scores, truth_low_risk, truth_threats, outputs)
    threats = list(outputs[1:])
    unknown = sorted(set(cfg.threat_recall_targets) - set(threats))
    if unknown:
        raise ValueError(f"policy.threat_recall_targets names unknown threat(s) {unknown}")
    nonpaper = low == 0  # not low risk: a CLEAR of such an item is a leak
    shortfall = calibration_shortfall(outputs[0], int(nonpaper.sum()), threat_truth, threats,
                                      cfg)
    if shortfall.problems:
        if cfg.on_insufficient == "error":
            raise InsufficientCalibrationError(shortfall.problems, shortfall.n_not_low_risk,
                                               shortfall.needed, shortfall.short_classes)
        return triage_policy(s, low, threat_truth, outputs, cfg, shortfall)

    inspect_thresholds: dict[str, float] = {}
    threat_evidence: dict[str, Any] = {}
    for j, name in enumerate(threats):
        target = cfg.recall_target(name)
        positives = threat_truth[:, j] == 1
        inspect_thresholds[name] = inspect_threshold(s[positives, 1 + j], target)
        threat_evidence[name] = recall_evidence(s[:, 1 + j], positives, inspect_thresholds[name],
                                                target, cfg.confidence)

    guards = {t: cfg.clear_guard for t in threats} if cfg.clear_guard is not None else {}
    guard_ok = np.all(s[:, 1:] < np.array([guards.get(t, np.inf) for t in threats]), axis=1)
    inspected = np.any(s[:, 1:] >= np.array([inspect_thresholds[t] for t in threats]), axis=1)
    clear_threshold, clear_evidence = search_clear_threshold(
        paper_score=s[:, 0],
        nonpaper=nonpaper,
        leak_eligible=guard_ok,
        threat_cleared_eligible=guard_ok & ~inspected & threat_truth.any(axis=1),
        cfg=cfg,
    )
    warnings: list[str] = []
    if math.isinf(clear_threshold):
        warnings.append(
            f"no {outputs[0]} threshold keeps the leak-rate upper bound <= {cfg.leak_rate_target} "
            f"at {cfg.confidence:.0%} confidence with <= {cfg.max_threat_cleared} threat item(s) "
            f"cleared on {int(nonpaper.sum())} non-low-risk ({outputs[0]}=0) calibration items: "
            "the policy clears nothing (every item goes to REVIEW or INSPECT)"
        )
    cleared = guard_ok & ~inspected & (s[:, 0] >= clear_threshold)
    clear_evidence["auto_clear_rate"] = float(cleared.mean())
    # paper_only_clear_rate: the name before the definition was configurable, kept.
    clear_evidence["low_risk_clear_rate"] = clear_evidence["paper_only_clear_rate"] = (
        float(cleared[low == 1].mean()) if low.any() else None
    )
    return Policy(
        outputs=list(outputs),
        clear_threshold=clear_threshold,
        inspect_thresholds=inspect_thresholds,
        clear_guards=guards,
        targets=policy_targets(cfg, threats),
        calibration={
            "method": METHOD,
            **split_counts(outputs[0], low, threat_truth, cfg),
            "clear": clear_evidence,
            "threats": threat_evidence,
        },
        warnings=warnings,
    )


def fixed_sequence_passes(passed: Sequence[bool] | np.ndarray) -> int:
    """How many hypotheses, tested in their fixed order, pass before the first failure."""
    failures = np.flatnonzero(~np.asarray(passed, dtype=bool))
    return int(failures[0]) if failures.size else len(passed)


def search_clear_threshold(
    paper_score: np.ndarray,
    nonpaper: np.ndarray,
    leak_eligible: np.ndarray,
    threat_cleared_eligible: np.ndarray,
    cfg: PolicyConfig,
) -> tuple[float, dict[str, Any]]:
    """Lowest low-risk threshold whose leak bound holds, by fixed-sequence testing.

    `paper_score` is the low-risk score (outputs[0]) and `nonpaper` marks the items
    that are not low risk (names kept from when low risk meant paper only).
    Candidates are the distinct low-risk scores, walked from strict (high) to
    lenient (low). At candidate t the null hypothesis "leak rate at t >
    target" is rejected when the one-sided Clopper–Pearson upper bound on the
    leaks (items not low risk with score >= t) is <= target; the candidate
    passes when it is rejected and at most `max_threat_cleared` threat items
    would be CLEARed. The walk stops at the first candidate that fails and
    keeps the last one that passed (Learn-then-Test, fixed-sequence).

    Why the bound stays honest despite the search: the leak count only grows
    as t falls, so passing at the chosen t implies passing at every stricter
    t. If the true leak rate at the chosen t exceeded the target, the walk
    would also have passed the one (data-independent) threshold where the true
    rate first exceeds it — an event of probability <= 1 - confidence. The
    data-derived candidate grid is no loophole: between consecutive scores the
    cleared set is constant, so this grid gives the same result as a fixed
    continuum. The fixed-sequence walk needs no multiplicity correction.

    Leaks are counted with `leak_eligible` (guards only), ignoring the inspect
    thresholds: those were chosen on the same data, and counting an item that
    INSPECT would have caught can only overstate leaks, never hide one.
    """
    n_nonpaper = int(nonpaper.sum())
    order = np.argsort(-paper_score, kind="stable")
    ranked = paper_score[order]
    leaks_cum = np.cumsum((nonpaper & leak_eligible)[order])
    threats_cum = np.cumsum(threat_cleared_eligible[order])
    # Last index of each run of equal scores: clearing at that score clears the whole tie.
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    candidates, leaks, threats_cleared = ranked[ends], leaks_cum[ends], threats_cum[ends]
    uppers = clopper_pearson_upper_many(leaks, n_nonpaper, cfg.confidence)
    passed = (uppers <= cfg.leak_rate_target) & (threats_cleared <= cfg.max_threat_cleared)
    n_pass = fixed_sequence_passes(passed)

    evidence: dict[str, Any] = {"thresholds_tested": min(n_pass + 1, len(candidates))}
    if n_pass < len(candidates):
        evidence["stopped_at"] = {
            "threshold": float(candidates[n_pass]),
            "leaks": int(leaks[n_pass]),
            "leak_rate_upper": float(uppers[n_pass]),
            "threats_cleared": int(threats_cleared[n_pass]),
            "failed": [
                why for why, bad in (
                    ("leak_bound", uppers[n_pass] > cfg.leak_rate_target),
                    ("threat_cleared", threats_cleared[n_pass] > cfg.max_threat_cleared),
                ) if bad
            ],
        }
    if n_pass == 0:
        evidence.update(threshold=None, leaks=0, leak_rate=0.0, threats_cleared=0,
                        leak_rate_upper=clopper_pearson(0, n_nonpaper, cfg.confidence).upper)
        return math.inf, evidence
    i = n_pass - 1
    evidence.update(
        threshold=float(candidates[i]),
        leaks=int(leaks[i]),
        leak_rate=int(leaks[i]) / n_nonpaper,
        leak_rate_upper=float(uppers[i]),
        threats_cleared=int(threats_cleared[i]),
    )
    return float(candidates[i]), evidence


def _validated(scores: ArrayLike, truth_low_risk: ArrayLike, truth_threats: ArrayLike,
               outputs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not outputs or outputs[0] not in LOW_RISK_DEFINITIONS:
        raise ValueError(f"outputs must start with one of {LOW_RISK_DEFINITIONS}, "
                         f"got {list(outputs)}")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(outputs):
        raise ValueError(f"scores must be N x {len(outputs)}, got shape {s.shape}")
    if not len(s):
        raise ValueError("the calibration split is empty")
    if not np.all(np.isfinite(s)):
        raise ValueError("calibration scores contain NaN or infinity")
    paper = np.asarray(truth_low_risk).astype(np.int64).reshape(-1)
    threat_truth = np.asarray(truth_threats).astype(np.int64).reshape(len(s), -1)
    if len(paper) != len(s) or threat_truth.shape[1] != len(outputs) - 1:
        raise ValueError(
            f"truth shapes {paper.shape} and {threat_truth.shape} do not match scores {s.shape}"
        )
    if not (np.isin(paper, (0, 1)).all() and np.isin(threat_truth, (0, 1)).all()):
        raise ValueError("truth labels must be 0/1")
    if np.any((paper == 1) & threat_truth.any(axis=1)):
        raise ValueError(f"items labelled both {outputs[0]} and threat: inconsistent truth")
    return s, paper, threat_truth
