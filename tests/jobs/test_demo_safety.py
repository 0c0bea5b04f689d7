"""The demo's safety figures (atr.demo_safety): per scanner and stage of 250 items, the
true leak rate against the simulator's truth; safe-mode spans from the answers."""

from __future__ import annotations

from atr.demo_safety import safe_mode_spans, stage_safety


def _rec(scanner: str, decision: str, reason: str, low: int, threats: list[str] | None = None
         ) -> dict:
    return {"scanner_id": scanner, "decision": decision, "reason": reason, "paper_only": low,
            "low_risk_item": low, "low_risk": "paper_only", "threats": threats or [],
            "model_version": "1", "clear_score": 0.9}


def test_stage_leak_rates_and_the_worst_error() -> None:
    # scanner b: 250 items held (100 not paper), then 250 on a new threshold with one leak
    # among 100 items not paper, and a cleared threat item in the second stage
    held = [_rec("b", "REVIEW", "safe_mode", 1)] * 150 + [_rec("b", "INSPECT", "threat:knife",
                                                               0, ["knife"])] * 100
    later = ([_rec("b", "CLEAR", "paper_only", 1)] * 149 + [_rec("b", "CLEAR", "paper_only", 0)]
             + [_rec("b", "CLEAR", "paper_only", 0, ["knife"])] + [_rec("b", "REVIEW", "uncertain",
                                                                         0)] * 99)
    out = stage_safety(held + later, target=0.005)["b"]
    first, second = out["stages"]
    assert (first["leaks"], first["leak_rate"], first["safe_mode"]) == (0, 0.0, 150)
    assert second["leaks"] == 2 and second["leak_rate"] == 2 / 101
    assert not second["within_target"] and not out["every_stage_within_target"]
    assert out["threats_cleared"] == 1 and out["threat_items"] == 101
    assert 1 / 101 < out["threats_cleared_upper"] < 0.06


def test_safe_mode_spans_run_until_the_next_clear() -> None:
    records = ([_rec("b", "CLEAR", "paper_only", 1)] + [_rec("b", "REVIEW", "safe_mode", 1)]
               + [_rec("b", "INSPECT", "threat:knife", 0)] * 3
               + [_rec("b", "REVIEW", "safe_mode", 1)] + [_rec("b", "CLEAR", "paper_only", 1)]
               + [_rec("b", "REVIEW", "safe_mode", 1)])
    assert safe_mode_spans(records) == [(1, 6), (7, 8)]
