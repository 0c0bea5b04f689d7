"""The triage-only policy: what calibration returns when the split cannot certify CLEAR.

A small archive (a new source, a first labelled batch) rarely holds the 598 items that
are not low risk that a 0.5 % leak bound at 95 % confidence needs even with zero leaks,
or `min_threat_positives` items of every threat class. Refusing would leave the line
without a model; clearing would overstate the bound. The middle road a screening line
can run safely: the model only triages. Nothing is released unseen (clear threshold
+inf, `mode: triage_only` in policy.json), items that look like a threat go to physical
INSPECTion, everything else to an image analyst (REVIEW). The first warning says why,
and how many more labelled items would let calibration certify CLEAR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from atr.policy.bounds import clopper_pearson, min_trials_for_zero_events
from atr.policy.config import PolicyConfig
from atr.policy.decision import TRIAGE_ONLY, Policy
from atr.policy.evidence import inspect_threshold, policy_targets, recall_evidence, split_counts

# The first words of a triage policy's first warning (the gate puts it first as well).
WARNING_PREFIX = "TRIAGE ONLY"
METHOD = (
    "triage only: the calibration split cannot certify the leak bound (or a threat class's "
    "recall), so no clear threshold is chosen and nothing is CLEARed; inspect thresholds by "
    "the recall-target rule, capped by policy.triage_inspect_threshold for classes with too "
    "few positives"
)


@dataclass(frozen=True)
class Shortfall:
    """What the calibration split lacks for the policy's claims (empty `problems`: nothing)."""

    low_risk: str
    n_not_low_risk: int
    needed: int  # items that are not low risk, for the leak bound even with zero leaks
    short_classes: dict[str, int]  # threat class -> its positives, where under the minimum
    min_positives: int
    problems: list[str]

    @property
    def more_items(self) -> int:
        """More labelled items that are not low risk before CLEAR can be certified."""
        return max(0, self.needed - self.n_not_low_risk)

    @property
    def more_positives(self) -> dict[str, int]:
        return {t: self.min_positives - k for t, k in self.short_classes.items()}


def calibration_shortfall(low_risk: str, n_not_low_risk: int, threat_truth: np.ndarray,
                          threats: Sequence[str], cfg: PolicyConfig) -> Shortfall:
    needed = min_trials_for_zero_events(cfg.leak_rate_target, cfg.confidence)
    problems: list[str] = []
    if n_not_low_risk < needed:
        problems.append(
            f"{n_not_low_risk} non-low-risk ({low_risk}=0) items, but bounding the leak rate "
            f"at <= {cfg.leak_rate_target} with {cfg.confidence:.0%} confidence needs at least "
            f"{needed} even with zero leaks"
        )
    positives = threat_truth.sum(axis=0).astype(int)
    short = {t: int(k) for t, k in zip(threats, positives, strict=True)
             if k < cfg.min_threat_positives}
    problems += [
        f"threat class {t!r} has {k} positive items, a recall claim needs at least "
        f"{cfg.min_threat_positives} (policy.min_threat_positives)" for t, k in short.items()
    ]
    return Shortfall(low_risk, n_not_low_risk, needed, short, cfg.min_threat_positives, problems)


def triage_inspect_threshold(positive_scores: np.ndarray, target: float,
                             cfg: PolicyConfig) -> tuple[float, str]:
    """A threat class's inspect threshold in a triage policy, and the rule that set it.

    * enough positives (>= min_threat_positives): the certified rule, the largest
      threshold whose recall on them meets the target (`recall_target`);
    * some, too few: the same rule on the positives there are, capped at
      `triage_inspect_threshold` (`recall_target_capped`). With 3 positives the 95 % rule
      takes the lowest of three scores, which may sit at 0.9 by luck while the class's
      next item scores 0.6; the cap keeps the threshold at least as sensitive as the
      fallback. A lower threshold costs physical inspections of harmless items; a higher
      one sends threats to an analyst instead of the bench. On a line that clears
      nothing the analyst sees every item anyway, so erring low is the cheap side;
    * none: the data say nothing about the class, the fallback alone (`fallback`):
      0.5 by default, where the model's sigmoid calls the threat more likely than not.
    """
    scores = np.asarray(positive_scores, dtype=np.float64)
    if not len(scores):
        return cfg.triage_inspect_threshold, "fallback"
    threshold = inspect_threshold(scores, target)
    if len(scores) >= cfg.min_threat_positives:
        return threshold, "recall_target"
    return min(threshold, cfg.triage_inspect_threshold), "recall_target_capped"


def triage_warning(shortfall: Shortfall) -> str:
    """The policy's first warning: triage only, what would certify CLEAR, and why."""
    more = [f"at least {shortfall.more_items} more labelled non-low-risk "
            f"({shortfall.low_risk}=0) items (even with zero leaks among them)"
            ] if shortfall.more_items else []
    if shortfall.more_positives:
        more.append("more positives of threat class(es) " + ", ".join(
            f"{t!r} +{k}" for t, k in shortfall.more_positives.items()))
    return (
        f"{WARNING_PREFIX}: this policy never CLEARs (threats go to INSPECT, everything else "
        f"to REVIEW); certifying CLEAR under low risk = {shortfall.low_risk} needs "
        + " and ".join(more) + ". Why: " + "; ".join(shortfall.problems) + "."
    )


def triage_policy(scores: np.ndarray, truth_low_risk: np.ndarray, threat_truth: np.ndarray,
                  outputs: Sequence[str], cfg: PolicyConfig, shortfall: Shortfall) -> Policy:
    """A policy that never CLEARs, with inspect thresholds that still route threats."""
    threats = list(outputs[1:])
    inspect: dict[str, float] = {}
    evidence: dict[str, Any] = {}
    for j, name in enumerate(threats):
        positives = threat_truth[:, j] == 1
        target = cfg.recall_target(name)
        inspect[name], rule = triage_inspect_threshold(scores[positives, 1 + j], target, cfg)
        evidence[name] = {
            **recall_evidence(scores[:, 1 + j], positives, inspect[name], target, cfg.confidence),
            "rule": rule,
            "certified": name not in shortfall.short_classes,
        }
    n_not = shortfall.n_not_low_risk
    no_clear = 0.0 if truth_low_risk.any() else None
    clear = {
        "threshold": None,
        "certified": False,
        "more_items_to_certify": shortfall.more_items,
        "more_positives_to_certify": shortfall.more_positives,
        "thresholds_tested": 0,
        "leaks": 0,
        "leak_rate": 0.0 if n_not else None,
        # What zero leaks on this split would support: above the target, hence triage.
        "leak_rate_upper": clopper_pearson(0, n_not, cfg.confidence).upper if n_not else 1.0,
        "threats_cleared": 0,
        "auto_clear_rate": 0.0,
        "paper_only_clear_rate": no_clear,
        "low_risk_clear_rate": no_clear,
    }
    guards = {t: cfg.clear_guard for t in threats} if cfg.clear_guard is not None else {}
    return Policy(
        outputs=list(outputs),
        clear_threshold=math.inf,
        inspect_thresholds=inspect,
        clear_guards=guards,
        targets=policy_targets(cfg, threats),
        calibration={
            "method": METHOD,
            **split_counts(outputs[0], truth_low_risk, threat_truth, cfg),
            "clear": clear,
            "threats": evidence,
        },
        warnings=[triage_warning(shortfall)],
        mode=TRIAGE_ONLY,
    )
