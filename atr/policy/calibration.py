"""Calibrating the decision policy's thresholds on a held-out calibration split.

Two kinds of threshold, two kinds of claim:

* inspect thresholds, one per threat class: the largest score threshold whose
  recall (share of that class's items reaching INSPECT) on the calibration set
  meets the class's target. Recall and its one-sided Clopper–Pearson lower
  bound are reported; the threshold is chosen on the same data, so the bound
  describes the calibration set rather than guaranteeing future recall.
* the clear threshold on the paper_only score, with a guarantee: with
  probability >= `confidence` the leak rate (share of non-paper-only items
  CLEARed) is <= `leak_rate_target`. See `search_clear_threshold`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from atr.policy.bounds import (
    clopper_pearson,
    clopper_pearson_upper_many,
    min_trials_for_zero_events,
)
from atr.policy.config import PolicyConfig
from atr.policy.decision import PAPER_ONLY, Policy

METHOD = (
    "fixed-sequence testing (Learn-then-Test) over paper_only thresholds from strict to lenient, "
    "stopping at the first failure; one-sided Clopper-Pearson upper bound on the leak rate"
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
    truth_paper_only: ArrayLike,
    truth_threats: ArrayLike,
    outputs: Sequence[str],
    cfg: PolicyConfig | Mapping[str, Any] | None = None,
) -> Policy:
    """Calibrate a `Policy` on a held-out split: scores N x K in `outputs` order, truths 0/1.

    `truth_threats` is N x T with T = K - 1 columns in the order of outputs[1:].
    Raises `InsufficientCalibrationError` when the split cannot support the
    leak bound or a recall claim; never returns a policy that overstates them.
    """
    cfg = cfg if isinstance(cfg, PolicyConfig) else PolicyConfig.from_dict(cfg)
    s, paper, threat_truth = _validated(scores, truth_paper_only, truth_threats, outputs)
    threats = list(outputs[1:])
    unknown = sorted(set(cfg.threat_recall_targets) - set(threats))
    if unknown:
        raise ValueError(f"policy.threat_recall_targets names unknown threat(s) {unknown}")
    nonpaper = paper == 0
    _check_sufficient(int(nonpaper.sum()), threat_truth, threats, cfg)

    inspect_thresholds: dict[str, float] = {}
    threat_evidence: dict[str, Any] = {}
    for j, name in enumerate(threats):
        target = cfg.recall_target(name)
        positives = threat_truth[:, j] == 1
        thr = inspect_threshold(s[positives, 1 + j], target)
        inspect_thresholds[name] = thr
        detected = int((s[positives, 1 + j] >= thr).sum())
        n_pos = int(positives.sum())
        threat_evidence[name] = {
            "n_positive": n_pos,
            "target": target,
            "inspected": detected,
            "recall": detected / n_pos,
            "recall_lower": clopper_pearson(detected, n_pos, cfg.confidence).lower,
            "negatives_over_threshold_rate": float(np.mean(s[~positives, 1 + j] >= thr)),
        }

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
            f"no paper_only threshold keeps the leak-rate upper bound <= {cfg.leak_rate_target} "
            f"at {cfg.confidence:.0%} confidence with <= {cfg.max_threat_cleared} threat item(s) "
            f"cleared on {int(nonpaper.sum())} non-paper-only calibration items: "
            "the policy clears nothing (every item goes to REVIEW or INSPECT)"
        )
    cleared = guard_ok & ~inspected & (s[:, 0] >= clear_threshold)
    clear_evidence["auto_clear_rate"] = float(cleared.mean())
    clear_evidence["paper_only_clear_rate"] = (
        float(cleared[paper == 1].mean()) if paper.any() else None
    )
    return Policy(
        outputs=list(outputs),
        clear_threshold=clear_threshold,
        inspect_thresholds=inspect_thresholds,
        clear_guards=guards,
        targets={
            **cfg.to_dict(),
            "threat_recall_targets": {t: cfg.recall_target(t) for t in threats},
        },
        calibration={
            "method": METHOD,
            "n": int(len(s)),
            "n_paper_only": int(paper.sum()),
            "n_nonpaper": int(nonpaper.sum()),
            "n_threat": int(threat_truth.any(axis=1).sum()),
            "n_nonpaper_required": min_trials_for_zero_events(cfg.leak_rate_target, cfg.confidence),
            "clear": clear_evidence,
            "threats": threat_evidence,
        },
        warnings=warnings,
    )


def inspect_threshold(positive_scores: np.ndarray, target: float) -> float:
    """Largest threshold t with share(positive_scores >= t) >= target."""
    ranked = np.sort(np.asarray(positive_scores, dtype=np.float64))[::-1]
    # The epsilon keeps 0.95 * 100 = 95.00000000000001 from demanding 96 hits.
    needed = max(1, math.ceil(target * len(ranked) - 1e-9))
    return float(ranked[needed - 1])


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
    """Lowest paper_only threshold whose leak bound holds, by fixed-sequence testing.

    Candidates are the distinct paper_only scores, walked from strict (high) to
    lenient (low). At candidate t the null hypothesis "leak rate at t >
    target" is rejected when the one-sided Clopper–Pearson upper bound on the
    leaks (non-paper-only items with score >= t) is <= target; the candidate
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


def _check_sufficient(n_nonpaper: int, threat_truth: np.ndarray, threats: Sequence[str],
                      cfg: PolicyConfig) -> None:
    needed = min_trials_for_zero_events(cfg.leak_rate_target, cfg.confidence)
    problems: list[str] = []
    if n_nonpaper < needed:
        problems.append(
            f"{n_nonpaper} non-paper-only items, but bounding the leak rate at "
            f"<= {cfg.leak_rate_target} with {cfg.confidence:.0%} confidence needs at least "
            f"{needed} even with zero leaks"
        )
    positives = threat_truth.sum(axis=0).astype(int)
    short = {t: int(k) for t, k in zip(threats, positives, strict=True)
             if k < cfg.min_threat_positives}
    problems += [
        f"threat class {t!r} has {k} positive items, a recall claim needs at least "
        f"{cfg.min_threat_positives} (policy.min_threat_positives)" for t, k in short.items()
    ]
    if problems:
        raise InsufficientCalibrationError(problems, n_nonpaper, needed, short)


def _validated(scores: ArrayLike, truth_paper_only: ArrayLike, truth_threats: ArrayLike,
               outputs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not outputs or outputs[0] != PAPER_ONLY:
        raise ValueError(f"outputs must start with {PAPER_ONLY!r}, got {list(outputs)}")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(outputs):
        raise ValueError(f"scores must be N x {len(outputs)}, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("calibration scores contain NaN or infinity")
    paper = np.asarray(truth_paper_only).astype(np.int64).reshape(-1)
    threat_truth = np.asarray(truth_threats).astype(np.int64).reshape(len(s), -1)
    if len(paper) != len(s) or threat_truth.shape[1] != len(outputs) - 1:
        raise ValueError(
            f"truth shapes {paper.shape} and {threat_truth.shape} do not match scores {s.shape}"
        )
    if not (np.isin(paper, (0, 1)).all() and np.isin(threat_truth, (0, 1)).all()):
        raise ValueError("truth labels must be 0/1")
    if np.any((paper == 1) & threat_truth.any(axis=1)):
        raise ValueError("items labelled both paper_only and threat: inconsistent truth")
    return s, paper, threat_truth
