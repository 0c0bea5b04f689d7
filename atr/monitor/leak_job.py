"""The live leak monitor's store side (`atr monitor`), per scanner and model version:

    audited predictions + each item's earliest inspection outcome
    -> atr.monitor.leak_rate.leak_figures -> LeakEstimate (upserted, read by /metrics)
    -> on an alarm: DriftEvent(kind="leak_rate") and safe mode (cause leak_alarm)

An audit counts when it was drawn from the policy's CLEARs (`audit`, `would_be`) while
the scanner ran normally: audits under safe mode face a stricter clear threshold and would
dilute the certified one's rate (they are counted in the evidence). Its outcome is the
first inspection verdict (analysts' later corrections do not re-open a physical check),
counted for the one decision it joins when the item was decided several times
(atr.store.feedback_join: the latest decision at or before the verdict);
a leak when the label of the model's low-risk definition is 0, or, without that label,
when a threat label is 1; neither: unlabelled, skipped.

Order and restart. Outcomes are taken in arrival order (received_at, id), so a pass only
appends to what the last one saw and the CUSUM's crossing, once seen, stays. The test runs
on the audits decided after the scanner's latest safe-mode lift: lifting is a person's
(or a covering champion's) word that the line is fine again, and the standard CUSUM
restarts after the action an alarm called for. Until then an alarm stays raised, and it
gives one event: none while a leak_rate event of the scanner is pending, nor when one was
already stored since the restart (handled or not).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atr.monitor.drift_performance import low_risk_output
from atr.monitor.leak_rate import LeakRule, leak_figures
from atr.monitor.reference import Reference
from atr.package.layout import POLICY_FILE
from atr.policy.taxonomy import LOW_RISK_DEFINITIONS
from atr.store.feedback_join import decisions_by_item, joined_id
from atr.store.prediction_store import (
    DriftEvent,
    Feedback,
    LeakEstimate,
    Prediction,
    ScannerEvent,
    utcnow,
)
from atr.store.safe_mode import enter_safe_mode

log = logging.getLogger(__name__)

LEAK_KIND = "leak_rate"
BY = "atr monitor"
UNKNOWN_VERSION = "unknown"  # LeakEstimate's key for predictions stored without a version
METRICS = ("audits", "leaks", "rate", "upper", "statistic", "alarm")


@dataclass(frozen=True)
class Outcome:
    received: tuple[datetime, int]  # the verdict's arrival (received_at, feedback id)
    decided: datetime  # the audited prediction's created_at
    leak: bool


def leak_target(rule: LeakRule, reference: Reference) -> tuple[float, str]:
    """monitor.leak.target, else the champion package's policy.json targets (beside its
    reference.parquet), else the policy's default target."""
    if rule.target is not None:
        return float(rule.target), "monitor.leak.target"
    policy = reference.path.parent / POLICY_FILE
    if policy.is_file():
        targets = json.loads(policy.read_text()).get("targets") or {}
        if targets.get("leak_rate_target") is not None:
            return float(targets["leak_rate_target"]), str(policy)
    from atr.policy.config import PolicyConfig

    return PolicyConfig().leak_rate_target, "atr.policy.config default"


def is_leak(labels: Mapping[str, Any], low_risk: str) -> bool | None:
    if labels.get(low_risk) is not None:
        return int(labels[low_risk]) == 0
    if any(int(v) == 1 for k, v in labels.items() if k not in LOW_RISK_DEFINITIONS
           and v is not None):
        return True  # a threat item is low risk under no definition
    return None


def audit_outcomes(session: Session, scanner_id: str, low_risk: str,
                   model_version: str | None = None
                   ) -> tuple[dict[str, list[Outcome]], dict[str, int]]:
    """{model version: outcomes in arrival order} and the counts of audits left out."""
    query = select(Prediction.id, Prediction.item_id, Prediction.model_version,
                   Prediction.created_at, Prediction.scanner_state, Prediction.would_be).where(
        Prediction.scanner_id == scanner_id, Prediction.audit.is_(True))
    if model_version is not None:
        query = query.where(Prediction.model_version == model_version)
    rows = list(session.execute(query))
    first = _first_inspections(session, [r.item_id for r in rows])
    # An item decided more than once (another scanner, pre-0002 duplicates): its outcome
    # counts for the one decision it joins (atr.store.feedback_join), not for each.
    decisions = decisions_by_item(session, list(first))
    skipped = {"awaiting_outcome": 0, "unlabelled": 0, "safe_mode": 0, "not_clear": 0,
               "other_decision": 0}
    by_version: dict[str, list[Outcome]] = {}
    for row in rows:
        if (row.would_be or {}).get("decision", "CLEAR") != "CLEAR":
            skipped["not_clear"] += 1
        elif row.scanner_state == "safe_mode":
            skipped["safe_mode"] += 1
        elif (fb := first.get(row.item_id)) is None:
            skipped["awaiting_outcome"] += 1
        elif joined_id(decisions, row.item_id, fb.at) != row.id:
            skipped["other_decision"] += 1
        elif (leak := is_leak(fb.labels or {}, low_risk)) is None:
            skipped["unlabelled"] += 1
        else:
            by_version.setdefault(row.model_version or UNKNOWN_VERSION, []).append(
                Outcome((fb.received_at, fb.id), row.created_at, leak))
    for outcomes in by_version.values():
        outcomes.sort(key=lambda o: o.received)
    return by_version, skipped


def _first_inspections(session: Session, item_ids: Sequence[str]) -> dict[str, Feedback]:
    first: dict[str, Feedback] = {}
    ids = sorted(set(item_ids))
    for start in range(0, len(ids), 500):  # SQLite caps bound parameters per query
        query = (select(Feedback).where(Feedback.item_id.in_(ids[start : start + 500]),
                                        Feedback.source == "inspection")
                 .order_by(Feedback.at, Feedback.id))
        for fb in session.scalars(query):
            first.setdefault(fb.item_id, fb)
    return first


def last_restart(session: Session, scanner_id: str) -> datetime | None:
    """When the scanner's safe mode was last lifted (None: never)."""
    return session.scalar(select(func.max(ScannerEvent.at)).where(
        ScannerEvent.scanner_id == scanner_id, ScannerEvent.action == "lift"))


def check_leaks(session: Session, scanner_id: str, reference: Reference, rule: LeakRule,
                model_version: str | None = None) -> dict[str, Any]:
    """Figures per model version (upserted), an event and safe mode on an alarm; returns
    the summary's `leak` block: the current version's figures (the reference's, else the
    newest outcome's) and, under `versions`, every version's headline figures."""
    target, source = leak_target(rule, reference)
    if not 0.0 < target * rule.ratio < 1.0:  # a relaxed test policy: no test, drift goes on
        log.warning("leak %s: no sequential test for target %s x ratio %s", scanner_id,
                    target, rule.ratio)
        return {"audits": None, "status": f"no test: target {target} x ratio {rule.ratio} >= 1"}
    low_risk = low_risk_output(reference.outputs) or "paper_only"
    by_version, skipped = audit_outcomes(session, scanner_id, low_risk, model_version)
    if not by_version:
        return {"audits": 0, "status": "no audited CLEAR with an inspection outcome",
                "skipped": skipped}
    restart = last_restart(session, scanner_id)
    figures: dict[str, dict[str, Any]] = {}
    for version, outcomes in by_version.items():
        if restart is not None:  # pre-restart audits first: the test runs on the suffix
            outcomes.sort(key=lambda o: (o.decided > restart, o.received))
        since = sum(o.decided <= restart for o in outcomes) if restart is not None else 0
        fig = leak_figures([o.leak for o in outcomes], target, rule, since)
        fig.update({"model_version": version, "low_risk": low_risk, "target_source": source,
                    "restart": restart.isoformat() if restart else None,
                    "skipped": skipped})
        _upsert(session, scanner_id, version, fig)
        if fig["alarm"]:
            fig.update(_alarm(session, scanner_id, version, fig, outcomes[since:], restart))
        figures[version] = fig
    current = model_version or max(by_version,
                                   key=lambda v: max(o.received for o in by_version[v]))
    block = {**figures[current],
             "versions": {v: {k: f[k] for k in METRICS} for v, f in figures.items()}}
    log.info("leak %s v%s: %d/%d audits leaked, statistic %.2f / h %.2f, alarm=%s",
             scanner_id, current, block["leaks"], block["audits"], block["statistic"],
             block["threshold"], block["alarm"])
    return block


def _upsert(session: Session, scanner_id: str, version: str, fig: dict[str, Any]) -> None:
    row = session.get(LeakEstimate, (scanner_id, version))
    if row is None:
        row = LeakEstimate(scanner_id=scanner_id, model_version=version)
        session.add(row)
    row.at = utcnow()
    row.audits, row.leaks, row.rate, row.upper = (fig["audits"], fig["leaks"], fig["rate"],
                                                  fig["upper"])
    row.statistic, row.alarm, row.evidence = fig["statistic"], fig["alarm"], fig
    session.commit()


def _alarm(session: Session, scanner_id: str, version: str, fig: dict[str, Any],
           test: Sequence[Outcome], restart: datetime | None) -> dict[str, Any]:
    """One leak_rate event per alarm, and the scanner into safe mode (a no-op when it is
    in already). An alarm is recorded when a leak_rate event of the scanner is pending, or
    one of this version was stored since the restart."""
    query = select(DriftEvent).where(DriftEvent.scanner_id == scanner_id,
                                     DriftEvent.kind == LEAK_KIND)
    recorded = [e for e in session.scalars(query.order_by(DriftEvent.id))
                if not e.handled or (e.model_version == version and (
                    restart is None or _after(e.created_at, restart)))]
    if recorded:
        event, new = recorded[-1], False
    else:
        upto = [o.decided for o in test[: fig["alarm_after"]]]
        event = DriftEvent(
            scanner_id=scanner_id, model_version=version, kind=LEAK_KIND,
            score=fig["statistic_at_alarm"], threshold=fig["threshold"],
            window_start=min(upto), window_end=max(upto), window_items=len(upto),
            evidence=fig, handled=False)
        session.add(event)
        session.commit()
        new = True
    entered = enter_safe_mode(session, scanner_id, "leak_alarm", by=BY, model_version=version,
                              detail={"event_id": event.id, "statistic": fig["statistic"],
                                      "threshold": fig["threshold"], "audits": fig["audits"],
                                      "leaks": fig["leaks"]})
    return {"event_id": event.id, "new_event": new, "safe_mode_entered": entered}


def _after(when: datetime, since: datetime) -> bool:
    # SQLite hands back naive datetimes (stored as UTC), a row made in this session and
    # PostgreSQL aware ones
    def utc(d: datetime) -> datetime:
        return d if d.tzinfo else d.replace(tzinfo=UTC)
    return utc(when) > utc(since)


def leak_metrics(leak: Mapping[str, Any] | None) -> dict[str, float]:
    """leak.<figure> for MLflow (none without audits)."""
    if not leak or not leak.get("audits"):
        return {}
    return {f"leak.{k}": float(leak[k]) for k in METRICS if leak.get(k) is not None}


def report_leak(cfg: Any, scanner_id: str, leak: dict[str, Any]) -> dict[str, Any]:
    """For a scanner without a full drift window: the leak figures alone as summary.json
    and, with monitor.log_to_mlflow, an MLflow run (the drift report needs a window)."""
    from atr.monitor.report import log_to_mlflow, report_dir, save_summary

    mon, when = cfg.monitor, datetime.now(UTC)
    path = save_summary(report_dir(mon.reports_dir, scanner_id, when),
                        {"scanner_id": scanner_id, "at": when.isoformat(), "leak": leak})
    out: dict[str, Any] = {"leak_summary": str(path)}
    if bool(mon.log_to_mlflow):
        out["mlflow_run_id"] = log_to_mlflow(
            cfg, scanner_id, {"summary": Path(path)}, leak_metrics(leak),
            {"model_version": str(leak.get("model_version")), "drift_kind": "None"})
    return out
