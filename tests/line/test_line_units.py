"""The line's plan and truth metrics on hand-made inputs (no service)."""

from __future__ import annotations

import pytest

from atr.line.feedback import choose
from atr.line.metrics import (
    block_summary,
    clear_rate_at_leak,
    latency_summary,
    record,
    truth_metrics,
)
from atr.line.parcels import Parcel
from atr.line.plan import phases_from_cfg
from atr.line.run import report_text
from atr.line.sender import Shot
from atr.policy.taxonomy import default_taxonomy


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


def _shot(scores: dict | None, status: int = 200) -> Shot:
    body = {"decision": "CLEAR", "reason": "x", "scores": scores, "latency_ms": 1.0,
            "model": {"version": 3}} if scores is not None else None
    return Shot(index=0, due_s=0.0, sent_s=0.0, done_s=0.01, status=status, body=body,
                error=None if status == 200 else "refused")


def test_records_take_low_risk_from_the_served_model() -> None:
    taxonomy = default_taxonomy()
    goods = Parcel("it-1", "parcel_160kv", 0, b"png", {"clothing": 1}, paper_only=0)
    knife = Parcel("it-2", "parcel_160kv", 0, b"png", {"clothing": 1, "knife": 1}, paper_only=0)
    no_threat_scores = {"no_threat": 0.9, **dict.fromkeys(taxonomy.threats, 0.1)}
    r = record(goods, _shot(no_threat_scores), taxonomy)
    # A no_threat model: goods are low risk, and its clear score is the no_threat one.
    assert (r["low_risk"], r["low_risk_item"], r["clear_score"]) == ("no_threat", 1, 0.9)
    assert record(knife, _shot(no_threat_scores), taxonomy)["low_risk_item"] == 0
    paper_scores = {"paper_only": 0.2, **dict.fromkeys(taxonomy.threats, 0.1)}
    r = record(goods, _shot(paper_scores), taxonomy)
    assert (r["low_risk"], r["low_risk_item"], r["clear_score"]) == ("paper_only", 0, 0.2)
    # An unanswered item falls back on the line's taxonomy.
    failed = record(goods, _shot(None, status=0), taxonomy)
    assert failed["low_risk"] == taxonomy.low_risk and failed["decision"] == "ERROR"


def nt(decision: str, paper_only: int, threats: list[str], no_threat: int) -> dict:
    return {**rec(decision, paper_only, threats), "low_risk": "no_threat",
            "low_risk_item": no_threat}


def test_truth_metrics_count_leaks_under_the_served_definition() -> None:
    records = [nt("CLEAR", 1, [], 1), nt("CLEAR", 0, [], 1),  # paper, goods: both low risk
               nt("REVIEW", 0, [], 1), nt("CLEAR", 0, ["knife"], 0),  # a threat leaked
               nt("INSPECT", 0, ["firearm"], 0)]
    m = truth_metrics(records)
    assert m["low_risk"] == "no_threat" and m["low_risk_items"] == 3
    assert m["low_risk_clear_rate"] == pytest.approx(2 / 3)
    assert m["paper_only_clear_rate"] == 1.0 and m["paper_only_items"] == 1  # literal paper
    assert m["leaks"] == 1 and m["leak_rate"] == pytest.approx(1 / 2)
    assert truth_metrics([*records, rec("CLEAR", 1, [])])["low_risk"] == "no_threat+paper_only"
    at = clear_rate_at_leak([{**r, "clear_score": s} for r, s in
                             zip(records, [0.9, 0.8, 0.3, 0.5, 0.1], strict=True)], 0.0)
    assert at["low_risk"] == "no_threat" and at["threshold"] == 0.5
    assert at["low_risk_clear_rate"] == pytest.approx(2 / 3) and at["non_paper_items"] == 2


def test_line_summary_names_the_low_risk_definition() -> None:
    taxonomy = default_taxonomy()
    parcels = [Parcel("a", "s", 0, b"", {"clothing": 1}, 0),
               Parcel("b", "s", 0, b"", {"knife": 1}, 0)]
    shots = [_shot({"no_threat": 0.9, "knife": 0.0}), _shot({"no_threat": 0.1, "knife": 0.9})]
    records = [record(p, s, taxonomy) for p, s in zip(parcels, shots, strict=True)]
    block = block_summary(records, shots, 0.005)
    assert block["low_risk"] == "no_threat" and block["low_risk_clear_rate"] == 1.0
    summary = {"mode": "closed-loop", "url": "http://x", "count": 2, "wall_s": 1.0,
               "offered_rate_per_s": None, "overall": block,
               "phases": [{"name": "a", **block}]}
    text = report_text(summary)
    assert "low risk (CLEAR evidence, the served model's calibration): no_threat" in text
    assert "@leak: low-risk (no_threat) items cleared" in text


def test_demo_report_names_the_low_risk_definition(tmp_path) -> None:
    from atr.demo_report import phase_figures, write_report

    def r(decision: str, low: int, version: str) -> dict:
        return {**nt(decision, 0, [] if low else ["knife"], low), "clear_score": 0.5,
                "model_version": version}

    a = {"records": [r("CLEAR", 1, "1"), r("INSPECT", 0, "1")]}
    chunks = [{"records": [r("REVIEW", 1, "1")]}]
    c = {"records": [r("CLEAR", 1, "2"), r("CLEAR", 0, "2")]}
    figures = phase_figures(a, chunks, c, 0.005)
    assert figures["low_risk"] == "no_threat"
    assert figures["stages"]["recovered"]["low_risk"] == "no_threat"
    assert figures["stages"]["recovered"]["leak_rate"] == 1.0  # the knife cleared
    summary = {"v1": 1, "v2": 2, "drift_detected_after_items": 1, "frontline_labels": 1,
               "gate_v2": "mixed", "swap_seconds": 1.0, **figures}
    page = write_report(tmp_path, summary, {"A": a, "C": c}, {"chunks": chunks},
                        {"monitor": []}, "gate text").read_text()
    assert "the definition the served models were calibrated\nunder): <b>no_threat</b>" in page
