"""Checks that a served decision is the model's policy applied to the scores it returned
(atr.policy.decision.Policy.decide), then the line's rules (atr.policy.line_rules: a
would-be CLEAR may become an audit, a safe-mode REVIEW or an implausible image's REVIEW /
INSPECT; nothing else changes), or, on an error path, the fail-safe INSPECT."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from atr.policy.decision import Policy
from helpers.registry import Registry

# The service rounds returned scores to 6 decimals (serving/decisions.py) after deciding on
# the full-precision ones: a score this close to a threshold may sit on either side of it.
ROUNDING = 5e-7


def served_policy(registry: Registry, body: Mapping[str, Any]) -> Policy:
    """The policy of the version that answered (`body["model"]["version"]`), rebuilt from
    the policy.json of the package that version was registered from."""
    assert body.get("model"), f"no model answered: {body}"
    return Policy.from_dict(registry.policy_json(body["model"]["version"]))


def line_outcomes(decision: str, reason: str) -> set[tuple[str, str]]:
    """What the line's rules may make of the policy's (decision, reason); the
    `image_implausible:` reasons stand for any check (see `_matches`)."""
    out = {(decision, reason)}
    if decision != "INSPECT":
        out.add(("INSPECT", "image_implausible:"))  # a blank frame
    if decision == "CLEAR":
        out |= {("INSPECT", "audit"), ("REVIEW", "safe_mode"), ("INSPECT", "safe_mode"),
                ("REVIEW", "image_implausible:")}
    return out


def _matches(served: tuple[str, str], allowed: set[tuple[str, str]]) -> bool:
    decision, reason = served
    if reason.startswith("image_implausible:"):
        reason = "image_implausible:"
    return (decision, reason) in allowed


def expected_decisions(scores: Mapping[str, float | None], policy: Policy,
                       scanner_id: str | None = None) -> set[tuple[str, str]]:
    """(decision, reason) that Policy.decide gives for these scores (null = not finite); more
    than one only where a rounded score is within ROUNDING of one of its thresholds."""
    assert set(scores) == set(policy.outputs), (sorted(scores), policy.outputs)
    row = [math.nan if scores[o] is None else float(scores[o]) for o in policy.outputs]
    # per output, the thresholds it is compared with: clear for the low-risk score,
    # inspect (and the clear guard, if any) for each threat
    thresholds = [[policy.threshold_for(scanner_id)]] + [
        [policy.inspect_thresholds[t], policy.clear_guards.get(t, math.inf)]
        for t in policy.threats]
    options = []
    for value, limits in zip(row, thresholds, strict=True):
        near = [t for t in limits if math.isfinite(t) and abs(value - t) <= ROUNDING]
        # both sides of a threshold the unrounded score may have been on
        options.append([value] + [x for t in near for x in (t, math.nextafter(t, -math.inf))])
    out = set()
    for candidate in itertools.product(*options):
        decisions, reasons = policy.decide([list(candidate)], [scanner_id])
        out.add((str(decisions[0]), str(reasons[0])))
    return out


def assert_policy_decision(body: Mapping[str, Any], policy: Policy,
                           line_rules: bool = True) -> None:
    """The response's decision and reason are `policy.decide` of the response's scores
    (for its scanner), after the line's rules unless `line_rules` is False."""
    expected = expected_decisions(body["scores"], policy, body.get("scanner_id"))
    allowed = set().union(*(line_outcomes(*e) for e in expected)) if line_rules else expected
    assert _matches((body["decision"], body["reason"]), allowed), (
        f"served {body['decision']}/{body['reason']} for scores {body['scores']}; "
        f"the policy says {sorted(expected)}")


def assert_served_decision(body: Mapping[str, Any], registry: Registry) -> None:
    """assert_policy_decision with the policy of the version that answered."""
    assert_policy_decision(body, served_policy(registry, body))


def assert_failsafe(body: Mapping[str, Any], reason: str) -> None:
    """An error path: INSPECT with `reason` and no score behind it (nothing was decided by
    the policy, so nothing can have been CLEARed)."""
    assert (body["decision"], body["reason"]) == ("INSPECT", reason), body
    assert not body["scores"], body


def as_response(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored `predictions` row (helpers.stores.store_rows) in the response's shape, for
    the checks above: what the line received is what the store holds."""
    import json

    scores = row["scores"]
    return {"decision": row["decision"], "reason": row["reason"],
            "scanner_id": row.get("scanner_id"),
            "scores": json.loads(scores) if isinstance(scores, str) else scores or {},
            "model": ({"name": row["model_name"], "version": row["model_version"]}
                      if row["model_version"] is not None else None)}
