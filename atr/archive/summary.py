"""What the archive demo reports: the policy's reach, the line's figures, the drift events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from atr.policy.decision import Policy


def policy_summary(path: Path) -> dict[str, Any]:
    """The registered policy's mode and, for triage only, what certifying CLEAR would take."""
    policy = Policy.load(path)
    clear = (policy.calibration or {}).get("clear") or {}
    return {
        "mode": policy.mode,
        "low_risk": policy.low_risk,
        "clears": not policy.clears_nothing,
        "clear_threshold": None if policy.clears_nothing else policy.clear_threshold,
        "inspect_thresholds": policy.inspect_thresholds,
        "more_items_to_certify": clear.get("more_items_to_certify"),
        "more_positives_to_certify": clear.get("more_positives_to_certify"),
        "leak_rate_upper_on_calib": clear.get("leak_rate_upper"),
        "first_warning": policy.warnings[0] if policy.warnings else None,
    }


def drift_events(root: Path, scanners: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The drift events stored for each scanner (the monitor's DriftEvent rows)."""
    from atr.store.prediction_store import DriftEvent, open_store

    sessions = open_store(f"sqlite:///{root / 'predictions' / 'predictions.db'}")
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in scanners}
    with sessions() as s:
        for ev in s.scalars(select(DriftEvent).order_by(DriftEvent.id)):
            out.setdefault(str(ev.scanner_id), []).append({
                "id": ev.id, "kind": ev.kind, "score": ev.score, "threshold": ev.threshold,
                "model_version": ev.model_version, "window_items": ev.window_items,
                "report": ev.report_path})
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def summary_text(summary: dict[str, Any]) -> str:
    m, pol, arc, new = (summary["model"], summary["policy"], summary["archive"],
                        summary["new_scanner"])
    lines = [f"archive demo done in {summary['minutes']} min; report {summary.get('report')}",
             f"model {m['name']} v{m['version']}: gate {m['gate_verdict']}, approved "
             f"(approval.mode={m['approval_mode']}), low risk = {pol['low_risk']}"]
    if pol["mode"] == "triage_only":
        lines.append(
            f"policy: TRIAGE ONLY - never CLEARs (threats -> INSPECT, the rest -> REVIEW): "
            f"the archive's calibration split cannot certify the leak bound; "
            f"more_items_to_certify = {pol['more_items_to_certify']} labelled items that are "
            f"not low risk" + (f", more threat positives {pol['more_positives_to_certify']}"
                               if pol.get("more_positives_to_certify") else ""))
    else:
        lines.append(f"policy: certified, clear threshold {pol['clear_threshold']}")
    cal = summary.get("drift_thresholds")
    if cal:
        lines.append(f"drift thresholds from the archive's {cal['split']} split "
                     f"({cal['held_out_items']} items vs a {cal['reference_items']}-item "
                     f"reference, {cal['draws']} resampled windows of {cal['window']}): "
                     + ", ".join(f"{k} {v:.4g}" for k, v in cal["thresholds"].items()
                                 if v is not None))
    o = arc["line"]["overall"]
    lines.append(
        f"{arc['scanner_id']}: {o['answered']}/{arc['line']['count']} answered, decisions "
        f"{o['decisions']}, threat recall at INSPECT {_pct(o['threat_recall_inspect'])}, "
        f"analyst load {_pct(o['analyst_load'])}, auto-clear {_pct(o['auto_clear_rate'])}")
    for scanner, state in arc["monitor"].items():
        lines.append(f"monitor after the archive replay, {scanner}: drift={state.get('drift')} "
                     + (f"({state.get('status')})" if state.get("status") else
                        f"(embedding {state.get('embedding'):.4f}, image stats "
                        f"{state.get('image_stats'):.3f}, scores {state.get('scores'):.3f})"))
    lines.append(f"new scanner {new['scanner_id']}: {new['items']} crops replayed; drift first "
                 f"fired after {new['detected_after_items']} items")
    for scanner, events in summary["drift_events"].items():
        kinds = ", ".join(f"#{e['id']} {e['kind']}" for e in events) or "none"
        lines.append(f"drift events {scanner}: {kinds}")
    lines.append("wall time per step (s): " + ", ".join(
        f"{k} {v}" for k, v in summary["steps_s"].items()))
    return "\n".join(lines)
