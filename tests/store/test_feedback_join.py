"""One rule for the decision a verdict joins when its item was decided several times (on
two scanners, or duplicates from before idempotent item ids): the latest decision at or
before the verdict, else the latest. The leak monitor counts an outcome once, for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from atr.monitor.leak_job import audit_outcomes
from atr.monitor.windows import latest_labels
from atr.store.feedback_join import decisions_by_item, joined_decision
from atr.store.prediction_store import Feedback, Prediction, ensure_store

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def _decide(s, rid: str, scanner: str, at: datetime, seq: int = 0) -> None:
    s.add(Prediction(request_id=rid, item_id="item-1", scanner_id=scanner, created_at=at,
                     decision="INSPECT", reason="audit", audit=True, resend_seq=seq,
                     would_be={"decision": "CLEAR", "reason": "paper_only"},
                     scanner_state="normal", model_version="1"))


def test_the_verdict_joins_the_latest_decision_before_it(empty_url: str) -> None:
    sessions = ensure_store(empty_url)
    with sessions.begin() as s:
        _decide(s, "a", "A", T0)
        _decide(s, "a2", "A", T0 + timedelta(minutes=1), seq=1)  # a pre-0002 duplicate
        _decide(s, "b", "B", T0 + timedelta(hours=2))  # re-scanned on another scanner
    with sessions() as s:
        rows = decisions_by_item(s, ["item-1"])["item-1"]
        ids = {p.request_id: p.id for p in s.scalars(select(Prediction))}
    pick = {label: joined_decision(rows, at).id for label, at in {
        "between": T0 + timedelta(hours=1), "after": T0 + timedelta(days=1),
        "skewed": T0 - timedelta(hours=1), "same instant": T0 + timedelta(hours=2)}.items()}
    assert pick == {"between": ids["a2"], "after": ids["b"], "skewed": ids["b"],
                    "same instant": ids["b"]}
    sessions.kw["bind"].dispose()


def test_one_inspection_counts_for_one_audit_and_labels_one_decision(empty_url: str) -> None:
    sessions = ensure_store(empty_url)
    with sessions.begin() as s:
        _decide(s, "a", "A", T0)
        _decide(s, "b", "B", T0 + timedelta(hours=2))
        s.add(Feedback(item_id="item-1", source="inspection", who="officer",
                       at=T0 + timedelta(hours=3), labels={"paper_only": 0}))
    with sessions() as s:
        on_a, skipped_a = audit_outcomes(s, "A", "paper_only")
        on_b, skipped_b = audit_outcomes(s, "B", "paper_only")
        labels = latest_labels(s, ["item-1"])
        b_id = s.scalar(select(Prediction.id).where(Prediction.request_id == "b"))
    assert on_a == {} and skipped_a["other_decision"] == 1  # not A's: B's scan came later
    assert [o.leak for o in on_b["1"]] == [True] and skipped_b["other_decision"] == 0
    assert labels == {b_id: {"paper_only": 0}}  # the drift monitor labels B's row only
    sessions.kw["bind"].dispose()
