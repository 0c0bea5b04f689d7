"""`atr monitor` over a real SQLite store: a drifted scanner gets a DriftEvent with its
evidence and report, a stable one does not; events stay pending until handled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from monitor_synth import add_predictions, synthetic_items, write_reference
from sqlalchemy import select

from atr.config import compose
from atr.monitor.job import mark_handled, pending_events, run
from atr.store.prediction_store import DriftEvent
from atr.store.safe_mode import safe_mode_scanners

# Small windows keep the test fast; they are noisier than the default 300, so the column
# thresholds go up (max over 20 same-distribution windows of 80: scores 0.36, stats 0.36).
WINDOW = ["monitor.window_size=80", "monitor.window_step=20", "monitor.rule.consecutive=2",
          "monitor.rule.thresholds.scores=0.6", "monitor.rule.thresholds.image_stats=0.6",
          "monitor.rule.thresholds.decisions=0.2"]


@pytest.fixture
def overrides(tmp_path: Path, runtime_overrides: list[str], store_url: str) -> list[str]:
    reference = write_reference(tmp_path / "model" / "reference.parquet", n=300)
    return [*runtime_overrides, f"monitor.prediction_db={store_url}",
            f"monitor.reference_path={reference}", *WINDOW]


def test_monitor_stores_event_for_drifted_scanner_only(
    overrides: list[str], sessions, tmp_path: Path
) -> None:
    with sessions() as s:
        add_predictions(s, synthetic_items(100, seed=5, shift=1.0), "drifted")
        add_predictions(s, synthetic_items(100, seed=6), "stable")
        add_predictions(s, synthetic_items(30, seed=7), "new-scanner")

    summary = run(compose("monitor", [*overrides, "monitor.log_to_mlflow=true"]))

    drifted, stable = summary["scanners"]["drifted"], summary["scanners"]["stable"]
    assert drifted["drift"] is True and drifted["new_event"] is True
    assert stable["drift"] is False and "event_id" not in stable
    waiting = summary["scanners"]["new-scanner"]
    assert (waiting["drift"], waiting["status"]) == (False, "waiting: 30 of 80 items")
    assert waiting["leak"]["audits"] == 0  # no audits here: figures in test_leak_monitor_job
    assert stable["embedding"] < 0.01 < drifted["embedding"]  # MMD, default threshold
    for result in (drifted, stable):
        report = Path(result["report"])
        assert report.is_file() and (report.parent / "snapshot.json").is_file()
        assert report.is_relative_to(tmp_path / "runtime" / "reports" / "monitor")

    with sessions() as s:
        events = list(s.scalars(select(DriftEvent)))
    assert len(events) == 1
    event = events[0]
    assert (event.scanner_id, event.handled, event.window_items) == ("drifted", False, 80)
    assert event.kind in {"embedding", "scores", "decisions", "image_stats"}
    assert event.score > event.threshold
    assert event.report_path == drifted["report"]
    assert event.window_end > event.window_start
    evidence = event.evidence
    assert len(evidence["scores"]) == 2  # the two consecutive windows that fired
    assert all(w[event.kind] > event.threshold for w in evidence["scores"])
    assert evidence["thresholds"]["embedding"] == 0.01 and evidence["consecutive"] == 2
    summary_file = json.loads((Path(event.report_path).parent / "summary.json").read_text())
    assert summary_file["drift"] is True and summary_file["scanner_id"] == "drifted"
    # the stored drift event put the drifted scanner, and only it, in safe mode
    assert drifted["safe_mode_entered"] is True
    with sessions() as s:
        modes = safe_mode_scanners(s)
    assert set(modes) == {"drifted"}
    assert (modes["drifted"]["cause"], modes["drifted"]["by"]) == ("drift", "atr monitor")

    # one MLflow run per report, drift scores as metrics, report files as artifacts
    client = MlflowClient(f"sqlite:///{tmp_path / 'runtime' / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("atr-monitoring")
    runs = client.search_runs([experiment.experiment_id])
    assert {r.data.tags["scanner_id"] for r in runs} == {"drifted", "stable"}
    run_ = next(r for r in runs if r.data.tags["scanner_id"] == "drifted")
    assert run_.data.metrics["drift.embedding"] == pytest.approx(drifted["embedding"])
    assert run_.data.metrics["drift.fired"] == 1.0
    files = {a.path for a in client.list_artifacts(run_.info.run_id, "report")}
    assert files == {"report/report.html", "report/snapshot.json", "report/summary.json"}


def test_pending_event_is_not_repeated_until_handled(overrides: list[str], sessions) -> None:
    with sessions() as s:
        add_predictions(s, synthetic_items(100, seed=5, shift=1.0), "drifted")
    quick = [*overrides, "monitor.report=false", "monitor.log_to_mlflow=false"]

    first = run(compose("monitor", quick))["scanners"]["drifted"]
    again = run(compose("monitor", quick))["scanners"]["drifted"]
    assert first["new_event"] and again["drift"] and not again["new_event"]
    assert again["event_id"] == first["event_id"]
    with sessions() as s:
        assert [e.id for e in pending_events(s)] == [first["event_id"]]
        assert pending_events(s, "other-scanner") == []
        assert mark_handled(s, [first["event_id"]]) == 1
        assert pending_events(s) == []
    # still drifted after the retraining was triggered: a new event
    after = run(compose("monitor", quick))["scanners"]["drifted"]
    assert after["new_event"] and after["event_id"] != first["event_id"]


def test_missing_champion_is_explained(runtime_overrides: list[str], store_url: str) -> None:
    cfg = compose("monitor", [*runtime_overrides, f"monitor.prediction_db={store_url}"])
    with pytest.raises(ValueError, match="alias 'champion'"):
        run(cfg)


def test_trigger_retrain_calls_the_retrain_function_and_handles_events(
    overrides: list[str], sessions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trigger_retrain runs atr.retrain.run (not the CLI) with the monitor's runtime and
    monitor.retrain_overrides merged by key; events are handled only when it succeeds."""
    import atr.retrain

    seen: list = []

    def fake_retrain(cfg):
        seen.append(cfg)
        if len(seen) == 1:
            raise RuntimeError("dvc repro failed")
        return {"gate": {"verdict": "better", "challenger": 2, "champion": 1}}

    monkeypatch.setattr(atr.retrain, "run", fake_retrain)
    with sessions() as s:
        add_predictions(s, synthetic_items(100, seed=5, shift=1.0), "drifted")
    quick = [*overrides, "monitor.report=false", "monitor.log_to_mlflow=false",
             "monitor.trigger_retrain=true",
             "monitor.retrain_overrides=['retrain.min_items=5','retrain.auto_approve=true']"]
    failed = run(compose("monitor", quick))["retrain"]
    assert failed["ok"] is False and failed["handled"] is False and failed["events"]
    with sessions() as s:
        assert len(pending_events(s)) == 1  # still pending: the retraining failed
    cfg = seen[0]
    assert cfg.paths.root == str(tmp_path / "runtime") and cfg.retrain.min_items == 5
    assert cfg.retrain.auto_approve is True and cfg.registry.model_name == "atr-screening"

    # the next pass sees the same pending event (no new one) and does not retrain ...
    assert "retrain" not in run(compose("monitor", quick))
    with sessions() as s:  # ... until someone clears it; the new event's retraining works
        mark_handled(s, [e.id for e in pending_events(s)])
    done = run(compose("monitor", quick))["retrain"]
    assert done["ok"] and done["handled"] and done["retrain"]["gate"]["challenger"] == 2
    with sessions() as s:
        assert pending_events(s) == []


def test_watch_runs_passes_until_sigterm(overrides: list[str], sessions,
                                         tmp_path: Path) -> None:
    """`atr monitor --watch=N` passes every N s; SIGTERM ends it cleanly (rc 0) after the
    pass under way."""
    import signal
    import subprocess
    import sys
    import time

    atr = Path(sys.executable).parent / "atr"
    proc = subprocess.Popen(
        [str(atr), "monitor", "--watch=0.2", *overrides, "monitor.report=false",
         "monitor.log_to_mlflow=false"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    passes: list[str] = []
    deadline = time.time() + 120
    while len(passes) < 2 and time.time() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        if line.startswith("[atr monitor] pass"):
            passes.append(line)
    assert len(passes) == 2, proc.stderr.read()[-3000:] if proc.poll() is not None else passes
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert "drift: none" in passes[0]
    assert '"stopped": "signal"' in out
