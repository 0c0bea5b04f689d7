"""`atr monitor`: one pass over the prediction store, per scanner:

    windows (atr.monitor.windows) -> drift scores (drift_scores) -> rule (drift_rule)
    -> Evidently report of the newest window (report) -> DriftEvent when the rule fires,
       and the scanner into safe mode (cause drift)
    audited CLEARs -> live leak rate and CUSUM (leak_job, leak_rate) -> LeakEstimate;
       on an alarm a DriftEvent(kind="leak_rate") and safe mode (cause leak_alarm)

The leak check needs no drift window: a scanner still filling its first window gets its
leak figures (and, with monitor.report, a leak-only summary.json and MLflow run).

    atr monitor                                        # reference: models:/NAME@champion
    atr monitor monitor.reference_path=artifacts/model/reference.parquet
    atr monitor monitor.window_size=500 monitor.log_to_mlflow=false
    atr monitor --watch                                # a pass a minute until SIGINT/SIGTERM
    atr monitor --watch=10                             # (monitor.watch_s=10)

Retraining is not started here unless monitor.trigger_retrain=true (then atr.retrain,
the path `atr retrain` takes): otherwise the closed loop reads `pending_events` and calls
`mark_handled` once it has acted on them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from omegaconf import DictConfig, OmegaConf
from sqlalchemy import select
from sqlalchemy.orm import Session

from atr.monitor.drift_performance import performance
from atr.monitor.drift_rule import DriftRule
from atr.monitor.drift_scores import DriftMethods, window_scores
from atr.monitor.leak_job import LEAK_KIND, check_leaks, leak_metrics, report_leak
from atr.monitor.leak_rate import LeakRule
from atr.monitor.reference import Reference, load_reference
from atr.monitor.report import build_report, log_to_mlflow, report_dir, save_report
from atr.monitor.windows import recent_predictions, scanners, sliding_windows
from atr.store.prediction_store import DriftEvent, open_store
from atr.store.safe_mode import enter_safe_mode

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    mon = cfg.monitor
    reference = load_reference(cfg)
    methods = DriftMethods.from_cfg(OmegaConf.to_container(mon.methods, resolve=True))
    rule = DriftRule.from_cfg(OmegaConf.to_container(mon.rule, resolve=True))
    leak_rule = LeakRule.from_cfg(OmegaConf.to_container(mon.leak, resolve=True))
    version = reference.model_version if bool(mon.match_model_version) else None
    size, step = int(mon.window_size), int(mon.window_step)
    sessions = open_store(str(mon.prediction_db))
    summary: dict[str, Any] = {"reference": str(reference.path), "model_version": version,
                               "scanners": {}}
    with sessions() as session:
        names = list(mon.scanners) if mon.get("scanners") else scanners(session, version)
        for scanner_id in names:
            leak = check_leaks(session, scanner_id, reference, leak_rule, version)
            frame = recent_predictions(session, scanner_id, size + (rule.consecutive - 1) * step,
                                       reference.outputs, version)
            windows = sliding_windows(frame, size, step, rule.consecutive)
            if not windows:
                summary["scanners"][scanner_id] = {
                    "drift": False, "status": f"waiting: {len(frame)} of {size} items",
                    "leak": leak}
                if bool(mon.report) and leak.get("audits"):
                    leak.update(report_leak(cfg, scanner_id, leak))
                continue
            summary["scanners"][scanner_id] = check_scanner(
                cfg, session, scanner_id, reference, windows, methods, rule, leak)
    if bool(mon.trigger_retrain) and any(s.get("new_event") or s["leak"].get("new_event")
                                         for s in summary["scanners"].values()):
        summary["retrain"] = _trigger_retrain(cfg, sessions)
    return summary


def check_scanner(cfg: DictConfig, session: Session, scanner_id: str, reference: Reference,
                  windows: Sequence[Any], methods: DriftMethods, rule: DriftRule,
                  leak: dict[str, Any] | None = None) -> dict[str, Any]:
    """Scores of each window, the rule, the report of the newest (with the scanner's
    leak figures), an event and safe mode if it fires."""
    mon = cfg.monitor
    ref = reference.frame
    history = [window_scores(ref, w, methods) for w in windows]
    current, scores = windows[-1], history[-1]
    perf = performance(current)
    decision = rule.decide(history, perf)
    start, end = current["created_at"].iloc[0], current["created_at"].iloc[-1]
    result: dict[str, Any] = {
        "drift": decision.drift, "kind": decision.kind, "window_items": len(current),
        "window_start": str(start), "window_end": str(end),
        **{s: scores[s] for s in ("embedding", "scores", "decisions", "image_stats")},
        "consecutive_flagged": decision.flagged, "performance": perf, "leak": leak or {},
    }
    evidence = {"scores": history,
                "thresholds": dict(rule.thresholds), "consecutive": rule.consecutive,
                "embedding_method": methods.embedding, "performance": perf,
                "reference": str(reference.path), "reference_items": len(ref)}
    if bool(mon.report):
        paths = _write_report(cfg, scanner_id, reference, current, methods, rule, result,
                              evidence)
        result["report"] = str(paths["html"])
    if decision.drift:
        result.update(_store_event(session, scanner_id, reference, decision, current,
                                   evidence, result.get("report")))
    log.info("monitor %s: drift=%s kind=%s embedding=%.3f", scanner_id, decision.drift,
             decision.kind, scores["embedding"])
    return result


def _write_report(cfg: DictConfig, scanner_id: str, reference: Reference, current: Any,
                  methods: DriftMethods, rule: DriftRule, result: dict[str, Any],
                  evidence: dict[str, Any]) -> dict[str, Any]:
    mon = cfg.monitor
    when = datetime.now(UTC)
    snapshot = build_report(reference.frame, current, methods, dict(rule.thresholds),
                            metadata={"scanner_id": scanner_id, "result": result},
                            leak=result["leak"])
    paths = save_report(snapshot, report_dir(mon.reports_dir, scanner_id, when),
                        {"scanner_id": scanner_id, "at": when.isoformat(), **result,
                         "evidence": evidence})
    if bool(mon.log_to_mlflow):
        perf = result["performance"]
        metrics = {f"drift.{s}": result[s] for s in ("embedding", "scores", "decisions",
                                                      "image_stats")}
        metrics.update({"drift.fired": float(result["drift"]), "window_items": len(current),
                        "labelled": perf["labelled"], "leak_rate": perf["leak_rate"],
                        "threat_recall": perf["threat_recall"]})
        metrics.update({f"column.{k}": v for k, v in evidence["scores"][-1]["columns"].items()})
        metrics.update(leak_metrics(result["leak"]))
        result["mlflow_run_id"] = log_to_mlflow(
            cfg, scanner_id, paths, metrics,
            {"model_version": str(reference.model_version), "drift_kind": str(result["kind"])})
    return paths


def _store_event(session: Session, scanner_id: str, reference: Reference, decision: Any,
                 current: Any, evidence: dict[str, Any], report: str | None) -> dict[str, Any]:
    """A new DriftEvent and safe mode, unless a drift event for this scanner is still
    pending (not handled): a drift that persists until retraining must not queue one
    retraining per pass, nor re-enter the safe mode an operator lifted meanwhile. (A
    pending leak_rate event is another finding: it does not hold a drift event back.)"""
    pending = [e for e in pending_events(session, scanner_id) if e.kind != LEAK_KIND]
    if pending:
        return {"event_id": pending[-1].id, "new_event": False}
    event = DriftEvent(
        scanner_id=scanner_id, kind=str(decision.kind),
        # a local reference has no registry version: record the model the window ran
        model_version=reference.model_version or current["model_version"].iloc[-1],
        score=decision.score, threshold=decision.threshold,
        window_start=current["created_at"].iloc[0], window_end=current["created_at"].iloc[-1],
        window_items=len(current), evidence=_jsonable(evidence), report_path=report,
        handled=False,
    )
    session.add(event)
    session.commit()
    entered = enter_safe_mode(session, scanner_id, "drift", by="atr monitor",
                              model_version=event.model_version,
                              detail={"event_id": event.id, "kind": event.kind,
                                      "score": event.score, "threshold": event.threshold})
    return {"event_id": event.id, "new_event": True, "safe_mode_entered": entered}


def pending_events(session: Session, scanner_id: str | None = None) -> list[DriftEvent]:
    """Drift events nobody has acted on yet, oldest first."""
    query = select(DriftEvent).where(DriftEvent.handled.is_(False))
    if scanner_id is not None:
        query = query.where(DriftEvent.scanner_id == scanner_id)
    return list(session.scalars(query.order_by(DriftEvent.created_at, DriftEvent.id)))


def mark_handled(session: Session, event_ids: Sequence[int]) -> int:
    """Mark events as acted on (retraining started); returns how many changed."""
    events = session.scalars(select(DriftEvent).where(DriftEvent.id.in_(list(event_ids))))
    changed = 0
    for event in events:
        changed += int(not event.handled)
        event.handled = True
    session.commit()
    return changed


def _trigger_retrain(cfg: DictConfig, sessions: Any) -> dict[str, Any]:
    """atr.retrain.run (what `atr retrain` runs) with this runtime and
    monitor.retrain_overrides; the events are handled only if it succeeded."""
    from atr.config import compose, merge_overrides, runtime_overrides
    from atr.retrain import run as retrain

    overrides = [str(o) for o in cfg.monitor.get("retrain_overrides") or []]
    with sessions() as session:
        ids = [e.id for e in pending_events(session)]
    try:
        result: dict[str, Any] = retrain(compose("retrain", merge_overrides(
            runtime_overrides(cfg), overrides)))
    except Exception as exc:  # the monitor keeps watching; the events stay pending
        log.exception("retraining after drift failed")
        return {"ok": False, "error": str(exc), "events": ids, "handled": False}
    with sessions() as session:
        mark_handled(session, ids)
    return {"ok": True, "events": ids, "handled": True, "retrain": result}


def watch(cfg: DictConfig) -> dict[str, Any]:
    """run() every monitor.watch_s seconds until SIGINT/SIGTERM; the pass under way when
    the signal comes finishes first, so a report or event is never left half-written."""
    import signal
    import threading

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    cycles, last = 0, {}
    try:
        while not stop.is_set():
            last = run(cfg)
            cycles += 1
            drifted = sorted(k for k, v in last["scanners"].items() if v.get("drift"))
            leaking = sorted(k for k, v in last["scanners"].items() if v["leak"].get("alarm"))
            print(f"[atr monitor] pass {cycles}: {len(last['scanners'])} scanners, "
                  f"drift: {', '.join(drifted) or 'none'}, "
                  f"leak alarm: {', '.join(leaking) or 'none'}", flush=True)
            stop.wait(float(cfg.monitor.watch_s))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return {"passes": cycles, "stopped": "signal", "last": last}


def job(cfg: DictConfig) -> dict[str, Any]:
    """`atr monitor`: one pass, or with monitor.watch_s > 0 (`--watch`) one every
    watch_s seconds until stopped."""
    return watch(cfg) if float(cfg.monitor.get("watch_s") or 0) > 0 else run(cfg)


def _jsonable(value: Any) -> Any:
    """numpy scalars and datetimes out of the evidence (the column is JSON)."""
    import json

    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item")
                                 else str(v)))
