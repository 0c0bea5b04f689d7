"""What a policy does to a labelled set: the safety and workload numbers a reviewer reads."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from atr.policy.bounds import clopper_pearson
from atr.policy.decision import Decision, Policy

# The three truth groups decisions are judged by, per low-risk definition: the low-risk
# items (CLEAR is right), the rest that carry no known threat (CLEAR is a leak), threats.
# For `no_threat` the middle group is `unverified`: no threat labelled, but no positive
# evidence of none either (a source whose labels are not complete for the item).
TRUTH_GROUPS = {"paper_only": ("paper_only", "goods", "threat"),
                "no_threat": ("no_threat", "unverified", "threat")}
TRUTH_CATEGORIES = TRUTH_GROUPS["paper_only"]  # the default definition's, for old readers


def truth_categories(low_risk: str = "paper_only") -> tuple[str, str, str]:
    try:
        return TRUTH_GROUPS[low_risk]
    except KeyError:
        raise ValueError(f"unknown low-risk definition {low_risk!r} "
                         f"(one of {sorted(TRUTH_GROUPS)})") from None


def truth_category(truth_low_risk: ArrayLike, truth_threats: ArrayLike,
                   low_risk: str = "paper_only") -> np.ndarray:
    """Per item: `threat` if any threat is present, else the low-risk group or the middle one
    (`paper_only`/`goods`, or `no_threat`/`unverified`; see TRUTH_GROUPS).

    Threat wins over a low-risk label: for safety an item carrying a threat is
    a threat item whatever else is in it.
    """
    low_group, other_group, _ = truth_categories(low_risk)
    low = np.asarray(truth_low_risk).astype(int).reshape(-1)
    threat = np.asarray(truth_threats).astype(int).reshape(len(low), -1).any(axis=1)
    return np.where(threat, "threat", np.where(low == 1, low_group, other_group))


def policy_report(
    policy: Policy,
    scores: ArrayLike,
    truth_low_risk: ArrayLike,
    truth_threats: ArrayLike,
    conf: float | None = None,
    scanner_ids: Any = None,
) -> dict[str, Any]:
    """Decide every item (per-scanner thresholds where `scanner_ids` are given) and measure
    the outcome against the truth.

    `truth_low_risk` is the truth column of the policy's low-risk definition
    (`policy.low_risk`, its first output): a leak is an item not low risk that is
    CLEARed. The report names the definition (`low_risk`) and the policy's mode;
    `n_paper_only`, `n_goods` and `paper_only_clear_rate` are kept under their old
    names and count the first and middle truth groups of that definition.
    Rates are None where their denominator is empty (plain JSON, no NaN).
    Upper/lower bounds are one-sided Clopper–Pearson at `conf` (default: the
    confidence the policy was calibrated to, else 0.95). On a fresh test split
    these bounds are honest: no threshold was chosen on it.
    """
    conf = conf if conf is not None else float(policy.targets.get("confidence", 0.95))
    decisions, _ = policy.decide(scores, scanner_ids)
    decided = np.array([d.value for d in decisions], dtype=object)
    groups = truth_categories(policy.low_risk)
    category = truth_category(truth_low_risk, truth_threats, policy.low_risk)
    threat_truth = np.asarray(truth_threats).astype(int).reshape(len(category), -1)
    if len(decided) != len(category):
        raise ValueError(f"{len(decided)} score rows but {len(category)} truth rows")

    clear = decided == Decision.CLEAR.value
    inspect = decided == Decision.INSPECT.value
    paper = category == groups[0]
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

    low_risk_clear_rate = _rate(int((clear & paper).sum()), int(paper.sum()))
    return {
        "low_risk": policy.low_risk,
        "policy_mode": policy.mode,
        "n": n,
        "n_low_risk": int(paper.sum()),
        "n_not_low_risk": n_nonpaper,
        "n_paper_only": int(paper.sum()),
        "n_goods": int((category == groups[1]).sum()),
        "n_threat": n_threat,
        "confidence": conf,
        "auto_clear_rate": _rate(int(clear.sum()), n),
        "low_risk_clear_rate": low_risk_clear_rate,
        "paper_only_clear_rate": low_risk_clear_rate,
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
            for truth in groups
        },
    }


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None
