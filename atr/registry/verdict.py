"""The gate's verdict: is the challenger better, worse or mixed against the champion?

Rule, per dataset (gold set, newest frontline batch), from the policy reports:

- safe(model) = no threat item cleared AND the leak rate's upper confidence bound is
  within the leak target (the bound `policy_report` computes at the policy's confidence).
- worse   if the challenger clears a threat item, or the champion is safe and the
          challenger is not, or neither meets the bound and the challenger leaks more items;
- better  if the challenger is safe and its auto-clear rate is not lower than the
          champion's by more than `auto_clear_margin`;
- mixed   otherwise (e.g. safe but clears noticeably less; or neither meets the bound on a
          set too small to show it, with no more leaks than the champion).

Overall: worse if any dataset is worse, better if all are better, else mixed;
`no-champion` when there is nothing to compare with. The gate never moves an alias:
the verdict informs the reviewer who approves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BETTER, WORSE, MIXED, NO_CHAMPION = "better", "worse", "mixed", "no-champion"

RULE = (
    "safe = no threat item cleared and leak-rate upper bound <= leak target; "
    "worse: challenger clears a threat, or is unsafe where the champion is safe, or both "
    "miss the bound and the challenger leaks more; better: challenger safe and auto-clear "
    "rate >= champion's - margin; else mixed. Overall: any worse -> worse, all better -> "
    "better, else mixed."
)


def is_safe(report: Mapping[str, Any], leak_target: float) -> bool:
    pol = report.get("policy") or {}
    if int(pol.get("threat_cleared_count") or 0) > 0:
        return False
    upper = pol.get("leak_rate_upper")
    if upper is None:  # no non-paper items in the set: nothing can have leaked
        return int(pol.get("leak_count") or 0) == 0
    return float(upper) <= leak_target


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
    if cp_safe and not ch_safe:
        return WORSE
    if not ch_safe and int(ch.get("leak_count") or 0) > int(cp.get("leak_count") or 0):
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
