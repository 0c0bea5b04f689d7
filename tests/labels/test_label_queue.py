"""Ranking the label queue: REVIEW, uncertain and drifted-scanner items first, one task per item."""

from __future__ import annotations

from datetime import timedelta

from labels_fixtures import CONFIDENT, T0, Line
from sqlalchemy import select

from atr.labels.label_queue import QueueWeights, open_tasks, refresh_queue, uncertainty
from atr.policy.decision import Policy
from atr.store.prediction_store import DriftEvent, LabelTask

THREATS = ["firearm", "knife", "ammunition", "narcotics", "lithium_battery"]
POLICY = Policy(outputs=["paper_only", *THREATS], clear_threshold=0.9,
                inspect_thresholds={t: 0.05 for t in THREATS})
NOW = T0 + timedelta(days=1)


def _queue(sessions) -> list[tuple[str, str]]:
    with sessions() as s:
        return [(t.item_id, t.status) for t, _ in open_tasks(s, 100)]


def test_uncertainty_is_closeness_to_the_policy_thresholds() -> None:
    near_clear = uncertainty({**CONFIDENT, "paper_only": 0.88}, POLICY)
    near_knife = uncertainty({**CONFIDENT, "knife": 0.04}, POLICY)
    far = uncertainty({**CONFIDENT, "paper_only": 0.3}, POLICY)
    assert near_clear[0] > 0.5 and "paper_only" in near_clear[1]
    assert near_knife[0] > 0.5 and "knife" in near_knife[1]
    assert far[0] < 0.3
    # without a policy: entropy, highest at 0.5
    assert uncertainty({"paper_only": 0.5}, None)[0] == 1.0
    assert uncertainty({"paper_only": 0.99}, None)[0] < 0.1


def test_ranking_puts_review_uncertain_and_drifted_items_first(line: Line, sessions) -> None:
    line.decide("confident", scanner="S1")
    line.decide("review", scanner="S1", decision="REVIEW", scores={**CONFIDENT, "paper_only": 0.6})
    line.decide("near-clear", scanner="S1", scores={**CONFIDENT, "paper_only": 0.87})
    line.decide("drifted", scanner="S9")
    line.decide("labelled", scanner="S9", decision="REVIEW")
    line.verdict("labelled", {"document": 1, "paper_only": 1})
    with sessions.begin() as s:
        s.add(DriftEvent(scanner_id="S9", kind="embedding", handled=False))
        s.add(DriftEvent(scanner_id="S1", kind="scores", handled=True))  # already retrained

    counts = refresh_queue(sessions, POLICY, now=NOW)
    assert counts == {"added": 4, "updated": 0, "closed": 0}
    order = [item for item, _ in _queue(sessions)]
    assert order[-1] == "confident" and set(order[:3]) == {"review", "near-clear", "drifted"}
    assert order[0] == "review"
    with sessions() as s:
        reasons = {t.item_id: t.reason for t in s.scalars(select(LabelTask))}
    assert reasons["review"].startswith("REVIEW") and "drift on S9" in reasons["drifted"]

    # a re-scan of an item and a second refresh: still one task per item
    line.decide("review", scanner="S1", decision="REVIEW", at=T0 + timedelta(hours=3))
    assert refresh_queue(sessions, POLICY, now=NOW)["added"] == 0
    with sessions() as s:
        ids = list(s.scalars(select(LabelTask.item_id)))
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 4


def test_feedback_closes_open_tasks_and_old_decisions_are_ignored(line: Line, sessions) -> None:
    line.decide("a", decision="REVIEW")
    line.decide("old", decision="REVIEW", at=T0 - timedelta(days=90))
    refresh_queue(sessions, None, QueueWeights(window_days=30), now=NOW)
    assert _queue(sessions) == [("a", "open")]
    line.verdict("a", {"knife": 1})
    assert refresh_queue(sessions, None, now=NOW)["closed"] == 1
    assert _queue(sessions) == []


NO_THREAT_POLICY = Policy(outputs=["no_threat", *THREATS], clear_threshold=0.9,
                          inspect_thresholds={t: 0.05 for t in THREATS})
NT_CONFIDENT = {"no_threat": 0.02, **{t: 0.01 for t in THREATS}}


def test_a_no_threat_model_ranks_by_its_own_clear_threshold(line: Line, sessions) -> None:
    # its low-risk output is no_threat: closeness to the clear threshold counts as for paper
    near = uncertainty({**NT_CONFIDENT, "no_threat": 0.88}, NO_THREAT_POLICY)
    assert near[0] > 0.5 and "no_threat 0.88 near 0.90" in near[1]
    assert uncertainty({**NT_CONFIDENT, "no_threat": 0.3}, NO_THREAT_POLICY)[0] < 0.3
    # a paper_only score (another model's) has no threshold in this policy: counts nothing
    assert uncertainty({"paper_only": 0.89}, NO_THREAT_POLICY) == (0.0, "")
    line.decide("nt-confident", scores=NT_CONFIDENT)
    line.decide("nt-near-clear", scores={**NT_CONFIDENT, "no_threat": 0.87})
    line.decide("nt-labelled", scores={**NT_CONFIDENT, "no_threat": 0.89})
    line.verdict("nt-labelled", {"knife": 0, "no_threat": 1})
    refresh_queue(sessions, NO_THREAT_POLICY, now=NOW)
    assert [item for item, _ in _queue(sessions)] == ["nt-near-clear", "nt-confident"]
