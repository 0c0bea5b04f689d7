"""The line's plan and truth metrics on hand-made inputs (no service)."""

from __future__ import annotations

import pytest

from atr.line.feedback import choose
from atr.line.metrics import clear_rate_at_leak, latency_summary, truth_metrics
from atr.line.plan import phases_from_cfg


def test_phases_split_count_and_refuse_unknown_keys() -> None:
    phases = phases_from_cfg({"count": 10, "phases": [
        {"scanner": "parcel_160kv"}, {"scanner": "parcel_140kv", "mix": "seasonal",
                                      "ageing_years": 5}]})
    assert [(p.scanner, p.mix, p.count) for p in phases] == [
        ("parcel_160kv", "default", 5), ("parcel_140kv", "seasonal", 5)]
    assert phases[1].profile_dict()["ageing"]["years"] == 5
    assert [p.count for p in phases_from_cfg({"count": 7, "scanner": "letter_80kv"})] == [7]
    with pytest.raises(ValueError, match="unknown key"):
        phases_from_cfg({"count": 4, "phases": [{"scaner": "parcel_160kv"}]})
    with pytest.raises(FileNotFoundError, match="no_such_mix"):
        phases_from_cfg({"count": 4, "mix": "no_such_mix"})[0].mix_dict()


def rec(decision: str, paper_only: int, threats: list[str]) -> dict:
    return {"decision": decision, "paper_only": paper_only, "threats": threats}


def test_truth_metrics_on_known_records() -> None:
    records = [rec("CLEAR", 1, []), rec("CLEAR", 1, []), rec("REVIEW", 1, []),  # paper
               rec("CLEAR", 0, []),  # a leak (goods cleared)
               rec("CLEAR", 0, ["knife"]),  # a threat cleared: leak too
               rec("INSPECT", 0, ["firearm"]), rec("REVIEW", 0, ["narcotics"]),
               rec("INSPECT", 0, []), rec("ERROR", 0, ["knife"])]  # error: left out of rates
    m = truth_metrics(records)
    assert m["decisions"] == {"CLEAR": 4, "REVIEW": 2, "INSPECT": 2, "ERROR": 1}
    assert m["auto_clear_rate"] == pytest.approx(4 / 8)
    assert m["paper_only_clear_rate"] == pytest.approx(2 / 3)
    assert m["leaks"] == 2 and m["leak_rate"] == pytest.approx(2 / 5)
    assert m["threats_cleared"] == 1 and m["threat_items"] == 3
    assert m["threat_recall_inspect"] == pytest.approx(1 / 3)
    assert m["analyst_load"] == pytest.approx(2 / 8)
    assert truth_metrics([])["auto_clear_rate"] is None


def test_clear_rate_at_leak_sets_the_threshold_on_truth() -> None:
    # 200 non-paper items scored 0..0.199; 10 paper items scored 0.1995..0.2085 and 0.05.
    other = [{"decision": "INSPECT", "paper_only": 0, "clear_score": i / 1000}
             for i in range(200)]
    paper = [{"decision": "REVIEW", "paper_only": 1, "clear_score": 0.1995 + i / 1000}
             for i in range(9)] + [{"decision": "CLEAR", "paper_only": 1, "clear_score": 0.05}]
    errors = [{"decision": "ERROR", "paper_only": 0, "clear_score": None}]
    strict = clear_rate_at_leak(other + paper + errors, 0.0)
    assert strict["threshold"] == pytest.approx(0.199) and strict["paper_only_clear_rate"] == 0.9
    # 1 % of 200 = 2 non-paper items may pass: the threshold drops to the third highest.
    loose = clear_rate_at_leak(other + paper, 0.01)
    assert loose["leaks_allowed"] == 2 and loose["threshold"] == pytest.approx(0.197)
    assert loose["paper_only_clear_rate"] == 0.9  # the policy's decisions play no part
    assert clear_rate_at_leak(paper, 0.01)["paper_only_clear_rate"] is None


def test_latency_summary_and_feedback_share() -> None:
    s = latency_summary([float(v) for v in range(1, 101)])
    assert s["p50"] == pytest.approx(50.5) and s["p99"] == pytest.approx(99.01)
    assert s["max"] == 100.0
    routed = [rec("INSPECT", 0, [])] * 400 + [rec("CLEAR", 1, [])] * 100
    assert choose(routed, 1.0, 0) == list(range(400))
    assert 150 < len(choose(routed, 0.5, 0)) < 250 and choose(routed, 0.0, 0) == []
