"""Pieces of calibration evidence shared by certified and triage-only calibration.

Recall rule and evidence per threat class, the split's counts and the targets that
policy.json records. Pure numpy + the exact bounds; no policy decisions here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from atr.policy.bounds import clopper_pearson, min_trials_for_zero_events
from atr.policy.config import PolicyConfig


def inspect_threshold(positive_scores: np.ndarray, target: float) -> float:
    """Largest threshold t with share(positive_scores >= t) >= target (needs >= 1 score)."""
    ranked = np.sort(np.asarray(positive_scores, dtype=np.float64))[::-1]
    if not len(ranked):
        raise ValueError("inspect_threshold needs at least one positive score")
    # The epsilon keeps 0.95 * 100 = 95.00000000000001 from demanding 96 hits.
    needed = max(1, math.ceil(target * len(ranked) - 1e-9))
    return float(ranked[needed - 1])


def recall_evidence(scores: np.ndarray, positives: np.ndarray, threshold: float, target: float,
                    confidence: float) -> dict[str, Any]:
    """What a threat class's inspect threshold does on the calibration split (one column)."""
    n_pos = int(positives.sum())
    detected = int((scores[positives] >= threshold).sum())
    negatives = scores[~positives]
    return {
        "n_positive": n_pos,
        "target": target,
        "inspected": detected,
        "recall": detected / n_pos if n_pos else None,
        "recall_lower": clopper_pearson(detected, n_pos, confidence).lower if n_pos else None,
        "negatives_over_threshold_rate": (
            float(np.mean(negatives >= threshold)) if len(negatives) else None
        ),
    }


def split_counts(low_risk: str, truth_low_risk: np.ndarray, threat_truth: np.ndarray,
                 cfg: PolicyConfig) -> dict[str, Any]:
    """Counts of the calibration split under the low-risk definition the policy uses.

    `n_paper_only`, `n_nonpaper` and `n_nonpaper_required` are the names these counts had
    before the definition was configurable (kept for their readers): they count items
    that are / are not low risk under `low_risk`, whichever definition that is.
    """
    n_low = int(truth_low_risk.sum())
    n_not = int(len(truth_low_risk) - n_low)
    needed = min_trials_for_zero_events(cfg.leak_rate_target, cfg.confidence)
    return {
        "low_risk": low_risk,
        "n": int(len(truth_low_risk)),
        "n_low_risk": n_low,
        "n_not_low_risk": n_not,
        "n_not_low_risk_required": needed,
        "n_paper_only": n_low,
        "n_nonpaper": n_not,
        "n_threat": int(threat_truth.any(axis=1).sum()),
        "n_nonpaper_required": needed,
    }


def policy_targets(cfg: PolicyConfig, threats: Sequence[str]) -> dict[str, Any]:
    """The targets recorded in policy.json, with each threat's recall target resolved."""
    return {**cfg.to_dict(), "threat_recall_targets": {t: cfg.recall_target(t) for t in threats}}
