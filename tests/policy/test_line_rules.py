"""The line's rules on top of the policy (atr.policy.line_rules) and the audit draw
(atr.policy.audit): what a would-be CLEAR becomes, and that nothing else ever clears."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import binom

from atr.policy.audit import AuditPlan, audit_draw, in_random_sample
from atr.policy.decision import Policy
from atr.policy.line_rules import line_decision


def test_no_rule_ever_turns_a_non_clear_into_clear() -> None:
    for decision, implausible, blank, drawn, safe in itertools.product(
            ("CLEAR", "REVIEW", "INSPECT"), (None, "air"), (False, True), (False, True),
            (False, True)):
        out = line_decision(decision, "r", implausible=implausible, blank=blank,
                            audit_drawn=drawn, safe_mode=safe)
        if out.decision == "CLEAR":
            assert decision == "CLEAR" and implausible is None and not drawn and not safe
        if decision == "INSPECT":
            assert (out.decision, out.reason) == ("INSPECT", "r")


def test_order_plausibility_then_audit_then_safe_mode() -> None:
    assert line_decision("CLEAR", "paper_only", implausible="ood", audit_drawn=True,
                         safe_mode=True).reason == "image_implausible:ood"
    blank = line_decision("REVIEW", "uncertain", implausible="air", blank=True)
    assert (blank.decision, blank.reason) == ("INSPECT", "image_implausible:air")
    audit = line_decision("CLEAR", "paper_only", audit_drawn=True, safe_mode=True)
    assert (audit.decision, audit.reason, audit.audit) == ("INSPECT", "audit", True)
    held = line_decision("CLEAR", "paper_only", safe_mode=True)
    assert (held.decision, held.reason) == ("REVIEW", "safe_mode")
    held = line_decision("CLEAR", "paper_only", safe_mode=True, fallback="INSPECT")
    assert (held.decision, held.reason) == ("INSPECT", "safe_mode")
    with pytest.raises(ValueError, match="fallback"):
        line_decision("CLEAR", "paper_only", fallback="CLEAR")


def test_audit_draw_is_uniform_keyed_and_repeatable() -> None:
    draws = np.array([audit_draw(7, "scanner-a", f"item-{i}") for i in range(20_000)])
    assert draws.min() >= 0 and draws.max() < 1
    # uniform: each decile holds 10 % within a 4-sigma binomial band
    counts = np.histogram(draws, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts - 2000) < 4 * np.sqrt(2000 * 0.9))
    assert audit_draw(7, "scanner-a", "item-1") == audit_draw(7, "scanner-a", "item-1")
    assert audit_draw(8, "scanner-a", "item-1") != audit_draw(7, "scanner-a", "item-1")
    assert audit_draw(7, "scanner-b", "item-1") != audit_draw(7, "scanner-a", "item-1")


def test_audit_share_per_scanner_within_its_binomial_interval() -> None:
    plan = AuditPlan(share=0.02, shares={"letters": 0.1}, seed=3)
    n = 10_000
    for scanner, share in (("parcels", 0.02), ("letters", 0.1)):
        audits = sum(plan.draw(scanner, f"{scanner}-{i}")[0] for i in range(n))
        lo, hi = binom.ppf(0.0005, n, share), binom.ppf(0.9995, n, share)
        assert lo <= audits <= hi, (scanner, audits, lo, hi)
    with pytest.raises(ValueError, match="letters"):
        AuditPlan(shares={"letters": 1.5})


def test_tightened_share_adds_audits_to_the_same_draws() -> None:
    """Tightened: every item the normal share audits is still audited (the same draw), plus
    those below the tightened share; a scanner with audits off stays off."""
    plan = AuditPlan(share=0.02, shares={"letters": 0.0}, seed=3, tightened=0.5)
    n = 4000
    normal = {i for i in range(n) if plan.draw("parcels", f"p-{i}")[0]}
    tight = {i for i in range(n) if plan.draw("parcels", f"p-{i}", tightened=True)[0]}
    assert normal < tight
    assert binom.ppf(0.0005, n, 0.5) <= len(tight) <= binom.ppf(0.9995, n, 0.5)
    assert plan.share_for("parcels", tightened=True) == 0.5
    assert plan.share_for("letters", tightened=True) == 0.0
    assert AuditPlan(share=0.6, tightened=0.5).share_for("x", tightened=True) == 0.6
    with pytest.raises(ValueError, match="tightened"):
        AuditPlan(tightened=1.5)


def test_random_sample_keeps_the_audits_drawn_below_the_normal_share() -> None:
    tight = {"audit_tightened": True, "audit_share": 0.5, "audit_normal_share": 0.02}
    assert in_random_sample(True, {"audit_draw": 0.3})  # drawn at the normal share
    assert in_random_sample(True, None)  # stored before tightened audits existed
    assert in_random_sample(True, {**tight, "audit_draw": 0.01})
    assert not in_random_sample(True, {**tight, "audit_draw": 0.3})
    assert not in_random_sample(False, {"audit_draw": 0.01})


def test_per_scanner_threshold_only_tightens() -> None:
    policy = Policy(outputs=["paper_only", "knife"], clear_threshold=0.6,
                    inspect_thresholds={"knife": 0.9}, scanner_clear_thresholds={"b": 0.8})
    decisions, _ = policy.decide([[0.7, 0.1]] * 3, ["a", "b", "c"])
    assert [str(d) for d in decisions] == ["CLEAR", "REVIEW", "CLEAR"]
    assert Policy.from_json(policy.to_json()).scanner_clear_thresholds == {"b": 0.8}
    with pytest.raises(ValueError, match="below the global"):
        Policy(outputs=["paper_only", "knife"], clear_threshold=0.6,
               inspect_thresholds={"knife": 0.9}, scanner_clear_thresholds={"b": 0.5})
