"""`atr monitor`'s live leak check over a real SQLite store: audited CLEARs with their
inspection outcomes give LeakEstimate rows per scanner and version; leaks on scanner B
only raise one leak_rate event and put B, and only B, in safe mode; a lift restarts the
test."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from monitor_synth import T0, add_predictions, synthetic_items, write_reference
from sqlalchemy import select

from atr.config import compose
from atr.monitor.job import mark_handled, run
from atr.policy.bounds import clopper_pearson
from atr.store.prediction_store import DriftEvent, Feedback, LeakEstimate, Prediction, utcnow
from atr.store.safe_mode import lift_safe_mode, safe_mode_scanners

# As in test_monitor_job: small windows, thresholds for their noise
WINDOW = ["monitor.window_size=80", "monitor.window_step=20", "monitor.rule.consecutive=2",
          "monitor.rule.thresholds.scores=0.6", "monitor.rule.thresholds.image_stats=0.6",
          "monitor.rule.thresholds.decisions=0.2"]
QUICK = ["monitor.report=false", "monitor.log_to_mlflow=false"]


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    return write_reference(tmp_path / "model" / "reference.parquet", n=300)


@pytest.fixture
def overrides(reference: Path, runtime_overrides: list[str], store_url: str) -> list[str]:
    return [*runtime_overrides, f"monitor.prediction_db={store_url}",
            f"monitor.reference_path={reference}", *WINDOW]


def add_audits(session, scanner_id: str, n: int, leaks: set[int], seed: int,
               start: datetime = T0, state: str = "normal") -> list[str]:
    """n audited CLEARs (serving's INSPECT with would_be CLEAR), each with an inspection
    outcome given in order: the items at the positions in `leaks` were not paper only."""
    rows = add_predictions(session, synthetic_items(n, seed=seed), scanner_id, start=start)
    for i, row in enumerate(rows):
        row.decision, row.reason, row.audit = "INSPECT", "audit", True
        row.would_be, row.scanner_state = {"decision": "CLEAR", "reason": "paper_only"}, state
        session.add(Feedback(item_id=row.item_id, source="inspection", who="officer",
                             at=start + timedelta(hours=1, seconds=i),
                             labels={"paper_only": int(i not in leaks), "firearm": 0,
                                     "knife": 0}))
    session.commit()
    return [r.item_id for r in rows]


def estimates(sessions) -> dict[str, LeakEstimate]:
    with sessions() as s:
        return {(e.scanner_id, e.model_version): e for e in s.scalars(select(LeakEstimate))}


def leak_events(sessions) -> list[DriftEvent]:
    with sessions() as s:
        return list(s.scalars(select(DriftEvent).where(DriftEvent.kind == "leak_rate")))


def test_leaks_on_one_scanner_raise_its_alarm_and_safe_mode_only(
    overrides: list[str], sessions, tmp_path: Path
) -> None:
    with sessions() as s:
        # A: enough items for drift windows, 40 clean audits among them; one item's first
        # inspection said paper only, a later one not: the first counts
        add_predictions(s, synthetic_items(60, seed=21), "A")
        a_items = add_audits(s, "A", 40, set(), seed=22, start=T0 + timedelta(minutes=5))
        s.add(Feedback(item_id=a_items[0], source="inspection", who="second look",
                       at=T0 + timedelta(days=2), labels={"paper_only": 0}))
        # B: too few items for a window; 6 of 30 audits leaked, a burst of three among them
        add_audits(s, "B", 30, {4, 10, 11, 12, 20, 27}, seed=23)
        # neither counts: an audit under safe mode, and one with only an analyst verdict
        add_audits(s, "B", 1, {0}, seed=24, state="safe_mode")
        (pending,) = add_predictions(s, synthetic_items(1, seed=25), "B")
        pending.audit, pending.decision = True, "INSPECT"
        s.add(Feedback(item_id=pending.item_id, source="analyst", who="analyst", at=T0,
                       labels={"paper_only": 0}))
        s.commit()

    # 40 audits in 100 items are 40 % INSPECT that would be CLEAR (the line: 2 %): keep
    # the decision mix out of the drift rule here
    summary = run(compose("monitor", [*overrides, "monitor.log_to_mlflow=true",
                                      "monitor.rule.thresholds.decisions=null"]))

    a, b = summary["scanners"]["A"], summary["scanners"]["B"]
    assert a["drift"] is False and b["status"].startswith("waiting")  # B: no window yet
    assert (a["leak"]["audits"], a["leak"]["leaks"], a["leak"]["alarm"]) == (40, 0, False)
    assert (b["leak"]["audits"], b["leak"]["leaks"], b["leak"]["alarm"]) == (30, 6, True)
    assert b["leak"]["skipped"] == {"awaiting_outcome": 1, "unlabelled": 0, "safe_mode": 1,
                                    "not_clear": 0, "other_decision": 0}
    assert b["leak"]["target"] == 0.005  # no policy.json beside a local reference: default
    # h is 664 lattice units, a leak adds 138 and a clean audit takes 1: the fifth leak,
    # audit 21, crosses it
    assert b["leak"]["alarm_after"] == 21 and b["leak"]["new_event"] is True
    assert b["leak"]["versions"] == {"1": {k: b["leak"][k] for k in (
        "audits", "leaks", "rate", "upper", "statistic", "alarm")}}

    rows = estimates(sessions)
    assert set(rows) == {("A", "1"), ("B", "1")}
    assert (rows["B", "1"].audits, rows["B", "1"].leaks, rows["B", "1"].alarm) == (30, 6, True)
    assert rows["B", "1"].upper == pytest.approx(clopper_pearson(6, 30, 0.95).upper)
    assert rows["B", "1"].statistic == pytest.approx(b["leak"]["statistic"])
    assert rows["B", "1"].statistic > rows["B", "1"].evidence["threshold"]
    assert (rows["A", "1"].alarm, rows["A", "1"].leaks, rows["A", "1"].upper) == (
        False, 0, pytest.approx(clopper_pearson(0, 40, 0.95).upper))

    (event,) = leak_events(sessions)
    assert (event.scanner_id, event.model_version, event.handled) == ("B", "1", False)
    assert event.score >= event.threshold and event.window_items == 21
    with sessions() as s:
        modes = safe_mode_scanners(s)
        assert [e.kind for e in s.scalars(select(DriftEvent))] == ["leak_rate"]
    assert set(modes) == {"B"}
    assert (modes["B"]["cause"], modes["B"]["by"], modes["B"]["model_version"]) == (
        "leak_alarm", "atr monitor", "1")

    # A's drift report carries its leak figures (summary.json, the HTML, MLflow); B's
    # come alone (no window for a drift report)
    report = Path(a["report"])
    assert json.loads((report.parent / "summary.json").read_text())["leak"]["audits"] == 40
    assert "0 of 40 audited CLEARs not low risk" in report.read_text()
    b_summary = json.loads(Path(b["leak"]["leak_summary"]).read_text())
    assert b_summary["leak"]["alarm"] is True
    client = MlflowClient(f"sqlite:///{tmp_path / 'runtime' / 'mlflow' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("atr-monitoring").experiment_id])
    metrics = {r.data.tags["scanner_id"]: r.data.metrics for r in runs}
    assert metrics["B"]["leak.alarm"] == 1.0 and metrics["B"]["leak.leaks"] == 6
    assert metrics["A"]["leak.audits"] == 40 and metrics["A"]["leak.alarm"] == 0.0
    assert "drift.embedding" in metrics["A"]


def test_alarm_gives_one_event_and_a_lift_restarts_the_test(overrides: list[str],
                                                            sessions) -> None:
    with sessions() as s:
        add_audits(s, "B", 30, {4, 10, 11, 12, 20, 27}, seed=23)
    quick = [*overrides, *QUICK]
    first = run(compose("monitor", quick))["scanners"]["B"]["leak"]
    again = run(compose("monitor", quick))["scanners"]["B"]["leak"]
    assert first["new_event"] and again["alarm"] and not again["new_event"]
    assert again["event_id"] == first["event_id"] and not again["safe_mode_entered"]
    assert len(leak_events(sessions)) == 1

    with sessions() as s:  # an operator lifts safe mode: the CUSUM starts afresh
        lift_safe_mode(s, "B", by="officer")
    lifted = run(compose("monitor", quick))["scanners"]["B"]["leak"]
    assert lifted["alarm"] is False and lifted["test_audits"] == 0
    assert (lifted["audits"], lifted["leaks"]) == (30, 6)  # the rate keeps every audit
    with sessions() as s:
        assert safe_mode_scanners(s) == {}

    # leaks again after the lift: safe mode again; the first event, still pending, is not
    # repeated ...
    with sessions() as s:
        add_audits(s, "B", 10, {1, 2, 3, 4, 5}, seed=26,
                   start=utcnow() + timedelta(seconds=1))
    relapse = run(compose("monitor", quick))["scanners"]["B"]["leak"]
    assert relapse["alarm"] and relapse["test_audits"] == 10 and relapse["alarm_after"] == 6
    assert relapse["safe_mode_entered"] and not relapse["new_event"]
    with sessions() as s:
        assert safe_mode_scanners(s)["B"]["cause"] == "leak_alarm"
        mark_handled(s, [first["event_id"]])
    # ... once it is handled, this alarm (after the restart) gets its own, once
    handled = run(compose("monitor", quick))["scanners"]["B"]["leak"]
    assert handled["new_event"] and handled["event_id"] != first["event_id"]
    assert not run(compose("monitor", quick))["scanners"]["B"]["leak"]["new_event"]
    assert len(leak_events(sessions)) == 2


def test_target_comes_from_the_champion_policy(overrides: list[str], sessions,
                                               reference: Path) -> None:
    """policy.json beside the reference (its package) sets the target; monitor.leak.target
    overrides it."""
    (reference.parent / "policy.json").write_text(json.dumps(
        {"targets": {"leak_rate_target": 0.1, "confidence": 0.95}}))
    with sessions() as s:
        add_audits(s, "B", 30, {4, 10, 11, 12, 20, 27}, seed=23)
    relaxed = run(compose("monitor", [*overrides, *QUICK]))["scanners"]["B"]["leak"]
    assert relaxed["target"] == 0.1 and relaxed["target_source"].endswith("policy.json")
    assert relaxed["alarm"] is False  # 6 in 30 is no evidence of 2 x 10 %
    with sessions() as s:
        assert safe_mode_scanners(s) == {}
    strict = run(compose("monitor", [*overrides, *QUICK, "monitor.leak.target=0.005"]))
    assert strict["scanners"]["B"]["leak"]["target_source"] == "monitor.leak.target"
    assert strict["scanners"]["B"]["leak"]["alarm"] is True
    # a target no doubling can test (a relaxed test policy) leaves the drift check running
    none = run(compose("monitor", [*overrides, *QUICK, "monitor.leak.target=0.6"]))
    assert none["scanners"]["B"]["leak"]["status"].startswith("no test")


def test_each_model_version_has_its_own_figures(overrides: list[str], sessions) -> None:
    """A local reference has no version: every version in the store gets its row; the
    block's figures are those of the version whose outcomes came in last."""
    with sessions() as s:
        old = add_audits(s, "B", 30, {4, 10, 11, 12, 20, 27}, seed=23)
        for row in s.scalars(select(Prediction).where(Prediction.item_id.in_(old))):
            row.model_version = "0"
        s.commit()
        add_audits(s, "B", 20, set(), seed=27, start=T0 + timedelta(days=1))
    leak = run(compose("monitor", [*overrides, *QUICK]))["scanners"]["B"]["leak"]
    assert (leak["model_version"], leak["audits"], leak["alarm"]) == ("1", 20, False)
    assert leak["versions"]["0"]["alarm"] is True and leak["versions"]["0"]["leaks"] == 6
    rows = estimates(sessions)
    assert {k: (r.audits, r.alarm) for k, r in rows.items()} == {("B", "0"): (30, True),
                                                                  ("B", "1"): (20, False)}
    (event,) = leak_events(sessions)
    assert event.model_version == "0"
