"""The approval record's check (atr/package/approval.py): what serving accepts as an
approval for the alias it serves."""

from __future__ import annotations

from atr.package.approval import approval_problem, is_record_tag

GOOD = {"approved_by": "rita", "approved_at": "2026-12-01T10:00:00+00:00",
        "approval.alias": "champion", "approval.mode": "ui"}


def test_a_complete_record_for_the_alias_is_an_approval() -> None:
    assert approval_problem(GOOD, "champion") is None
    for mode in ("manual", "api", "auto-simulation"):
        assert approval_problem({**GOOD, "approval.mode": mode}, "champion") is None


def test_anything_less_is_named() -> None:
    cases = {
        "approved_by": ({k: v for k, v in GOOD.items() if k != "approved_by"}, "champion"),
        "not for @champion": ({**GOOD, "approval.alias": "challenger"}, "champion"),
        "without approval.alias": ({k: v for k, v in GOOD.items()
                                    if k != "approval.alias"}, "champion"),
        "unreadable approved_at": ({**GOOD, "approved_at": "yesterday"}, "champion"),
        "unknown approval.mode": ({**GOOD, "approval.mode": "forged"}, "champion"),
    }
    for expected, (tags, alias) in cases.items():
        problem = approval_problem(tags, alias)
        assert problem is not None and expected in problem, (expected, problem)
    assert "@shadow" in (approval_problem(GOOD, "shadow") or "")
    assert approval_problem({}, "champion") is not None
    assert approval_problem({**GOOD, "approved_by": "  "}, "champion") is not None


def test_record_tags_are_recognised() -> None:
    assert all(map(is_record_tag, ["approved_by", "approved_at", "approval.alias",
                                   "approval.anything"]))
    assert not any(map(is_record_tag, ["sha256.model.onnx", "gate.verdict", "approved"]))
