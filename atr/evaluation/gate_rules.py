"""The gate's verdict: is the challenger better, worse or mixed against the champion?

Rule, per dataset (gold set, newest frontline batch), from the policy reports:

- safe(model) = no threat item cleared AND its leak rate on the set is within the leak
  target. The point rate, not the upper bound: the bound is certified at calibration
  (policy.json); a gate set is usually too small to certify it again (a 1 000-item
  frontline batch with one leak has an upper bound over 0.5 % whatever the model), and a
  bound-based rule would then prefer a model that clears nothing.
- worse   if the challenger clears a threat item, or is unsafe where the champion is safe,
          or leaks significantly more than the champion (one-sided Fisher exact test on
          leaks / non-paper items, p < 0.05);
- better  if the challenger is safe and its auto-clear rate is not lower than the
          champion's by more than `auto_clear_margin`;
- mixed   otherwise (e.g. safe but clears noticeably less; or both over the target).

Overall: worse if any dataset is worse, better if all are better, else mixed;
`no-champion` when there is nothing to compare with. The gate never moves an alias:
the verdict informs the reviewer who approves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scipy.stats import fisher_exact

BETTER, WORSE, MIXED, NO_CHAMPION = "better", "worse", "mixed", "no-champion"
SIGNIFICANCE = 0.05

RULE = (
    "safe = no threat item cleared and leak rate <= leak target (the bound itself is "
    "certified at calibration); worse: challenger clears a threat, or is unsafe where the "
    "champion is safe, or leaks significantly more (one-sided Fisher, p < 0.05); better: "
    "challenger safe and auto-clear rate >= champion's - margin; else mixed. Overall: any "
    "worse -> worse, all better -> better, else mixed."
)


def _non_paper(pol: Mapping[str, Any]) -> int:
    """Items not low risk (the leak denominator) under the report's own definition."""
    if pol.get("n_not_low_risk") is not None:
        return int(pol["n_not_low_risk"])
    return int(pol.get("n_goods") or 0) + int(pol.get("n_threat") or 0)  # older reports


def is_safe(report: Mapping[str, Any], leak_target: float) -> bool:
    pol = report.get("policy") or {}
    if int(pol.get("threat_cleared_count") or 0) > 0:
        return False
    rate = pol.get("leak_rate")
    if rate is None:  # no non-paper items in the set: nothing can have leaked
        return int(pol.get("leak_count") or 0) == 0
    return float(rate) <= leak_target


def leaks_more(challenger: Mapping[str, Any], champion: Mapping[str, Any]) -> bool:
    """One-sided Fisher exact test: does the challenger leak more often than the champion?"""
    ch, cp = challenger.get("policy") or {}, champion.get("policy") or {}
    k1, n1 = int(ch.get("leak_count") or 0), _non_paper(ch)
    k0, n0 = int(cp.get("leak_count") or 0), _non_paper(cp)
    if k1 == 0 or n1 == 0 or n0 == 0:
        return False
    _, p = fisher_exact([[k1, n1 - k1], [k0, n0 - k0]], alternative="greater")
    return bool(p < SIGNIFICANCE)


def dataset_verdict(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    leak_target: float,
    auto_clear_margin: float,
) -> str:
    if champion is None:
        return NO_CHAMPION
    ch, cp = challenger.get("policy") or {}, champion.get("policy") or {}
    ch_safe, cp_safe = is_safe(challenger, leak_target), is_safe(champion, leak_target)
    if int(ch.get("threat_cleared_count") or 0) > 0:
        return WORSE
    if (cp_safe and not ch_safe) or leaks_more(challenger, champion):
        return WORSE
    if not ch_safe:
        return MIXED
    ch_clear = float(ch.get("auto_clear_rate") or 0.0)
    cp_clear = float(cp.get("auto_clear_rate") or 0.0)
    return BETTER if ch_clear >= cp_clear - auto_clear_margin else MIXED


def overall_verdict(per_dataset: Mapping[str, str]) -> str:
    verdicts = set(per_dataset.values())
    if not verdicts or verdicts == {NO_CHAMPION}:
        return NO_CHAMPION
    if WORSE in verdicts:
        return WORSE
    if verdicts == {BETTER}:
        return BETTER
    return MIXED
