"""What a policy does to a labelled set: the safety and workload numbers a reviewer reads."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from atr.policy.bounds import clopper_pearson
from atr.policy.decision import Decision, Policy

TRUTH_CATEGORIES = ("paper_only", "goods", "threat")


def truth_category(truth_paper_only: ArrayLike, truth_threats: ArrayLike) -> np.ndarray:
    """Per item: `threat` if any threat is present, else `paper_only` or `goods`.

    Threat wins over a paper_only label: for safety an item carrying a threat is
    a threat item whatever else is in it.
    """
    paper = np.asarray(truth_paper_only).astype(int).reshape(-1)
    threat = np.asarray(truth_threats).astype(int).reshape(len(paper), -1).any(axis=1)
    return np.where(threat, "threat", np.where(paper == 1, "paper_only", "goods"))


def policy_report(
    policy: Policy,
    scores: ArrayLike,
    truth_paper_only: ArrayLike,
    truth_threats: ArrayLike,
    conf: float | None = None,
) -> dict[str, Any]:
    """Decide every item and measure the outcome against the truth.

    Rates are None where their denominator is empty (plain JSON, no NaN).
    Upper/lower bounds are one-sided Clopper–Pearson at `conf` (default: the
    confidence the policy was calibrated to, else 0.95). On a fresh test split
    these bounds are honest: no threshold was chosen on it.
    """
    conf = conf if conf is not None else float(policy.targets.get("confidence", 0.95))
    decisions, _ = policy.decide(scores)
    decided = np.array([d.value for d in decisions], dtype=object)
    category = truth_category(truth_paper_only, truth_threats)
    threat_truth = np.asarray(truth_threats).astype(int).reshape(len(category), -1)
    if len(decided) != len(category):
        raise ValueError(f"{len(decided)} score rows but {len(category)} truth rows")

    clear = decided == Decision.CLEAR.value
    inspect = decided == Decision.INSPECT.value
    paper = category == "paper_only"
    threat = category == "threat"
    nonpaper = ~paper
    n, n_nonpaper, n_threat = len(category), int(nonpaper.sum()), int(threat.sum())
    leaks, threats_cleared = int((clear & nonpaper).sum()), int((clear & threat).sum())

    recall: dict[str, Any] = {}
    for j, name in enumerate(policy.threats):
        positives = threat_truth[:, j] == 1
        k, m = int((inspect & positives).sum()), int(positives.sum())
        recall[name] = {
            "n": m,
            "inspected": k,
            "recall": _rate(k, m),
            "recall_lower": clopper_pearson(k, m, conf).lower if m else None,
        }

    return {
        "n": n,
        "n_paper_only": int(paper.sum()),
        "n_goods": int((category == "goods").sum()),
        "n_threat": n_threat,
        "confidence": conf,
        "auto_clear_rate": _rate(int(clear.sum()), n),
        "paper_only_clear_rate": _rate(int((clear & paper).sum()), int(paper.sum())),
        "leak_count": leaks,
        "leak_rate": _rate(leaks, n_nonpaper),
        "leak_rate_upper": clopper_pearson(leaks, n_nonpaper, conf).upper if n_nonpaper else None,
        "threat_cleared_count": threats_cleared,
        "threat_cleared_rate": _rate(threats_cleared, n_threat),
        "threat_cleared_rate_upper": (
            clopper_pearson(threats_cleared, n_threat, conf).upper if n_threat else None
        ),
        "threat_recall": recall,
        "analyst_load": _rate(int((decided == Decision.REVIEW.value).sum()), n),
        "inspect_rate": _rate(int(inspect.sum()), n),
        "confusion": {
            truth: {d.value: int((decided[category == truth] == d.value).sum()) for d in Decision}
            for truth in TRUTH_CATEGORIES
        },
    }


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None
