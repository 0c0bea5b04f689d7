"""The line's rules on top of the policy: what happens to a would-be CLEAR.

The policy (atr.policy.decision) turns scores into CLEAR / REVIEW / INSPECT. Before an item
is released, three rules of the running line may take the CLEAR back, in this order:

1. plausibility (atr.package.plausibility): no CLEAR without evidence in the image. A
   blank frame goes to INSPECT whatever the policy said (nobody has seen the item);
   another implausible image that would be cleared goes to REVIEW. Reason
   `image_implausible:<check>`.
2. audit (atr.policy.audit): a drawn share of the remaining would-be CLEARs goes to
   INSPECT, reason `audit`. Audits are drawn in safe mode too: they are what measures the
   live leak rate, and what buys safe mode back (recalibration).
3. safe mode: a scanner in safe mode gets its fallback (REVIEW by default, or INSPECT)
   instead of CLEAR, reason `safe_mode`. Threats still go to INSPECT: only CLEARs change.

Nothing here ever turns a REVIEW or INSPECT into a CLEAR.
"""

from __future__ import annotations

from dataclasses import dataclass

CLEAR, REVIEW, INSPECT = "CLEAR", "REVIEW", "INSPECT"
IMPLAUSIBLE_PREFIX = "image_implausible:"
AUDIT = "audit"
SAFE_MODE = "safe_mode"
FALLBACKS = (REVIEW, INSPECT)


@dataclass(frozen=True)
class LineOutcome:
    decision: str
    reason: str
    audit: bool


def line_decision(decision: str, reason: str, *, implausible: str | None = None,
                  blank: bool = False, audit_drawn: bool = False, safe_mode: bool = False,
                  fallback: str = REVIEW) -> LineOutcome:
    """The decision sent to the sorter, from the policy's and the line's state."""
    if fallback not in FALLBACKS:
        raise ValueError(f"safe-mode fallback {fallback!r} not one of {FALLBACKS}")
    if implausible is not None and blank and decision != INSPECT:
        return LineOutcome(INSPECT, IMPLAUSIBLE_PREFIX + implausible, False)
    if decision != CLEAR:
        return LineOutcome(decision, reason, False)
    if implausible is not None:
        return LineOutcome(INSPECT if blank else REVIEW, IMPLAUSIBLE_PREFIX + implausible,
                           False)
    if audit_drawn:
        return LineOutcome(INSPECT, AUDIT, True)
    if safe_mode:
        return LineOutcome(fallback, SAFE_MODE, False)
    return LineOutcome(CLEAR, reason, False)
