"""The demo's safety stages: the live leak figures after each monitor pass, recalibration
of the new scanner's clear threshold (then the gate and the simulated approval), the
recalibrated version on the line, and the run's safety summary.

Recalibration certifies a per-scanner threshold for the champion from the labels of the
new scanner that the decision did not choose (audits, safe-mode REVIEWs; see
docs/recalibration.md). When the labels do not support one, nothing is registered, the
scanner stays in safe mode, and the summary says why: that is the honest outcome.
"""

from __future__ import annotations

import time
from typing import Any

from omegaconf import DictConfig

from atr.config import compose, merge_overrides, runtime_overrides
from atr.demo_safety import safe_mode_time, stage_safety

RECALIBRATION = "recalibration: scanner B's threshold from frontline labels + gate"
RECALIBRATED = "recalibrated version: hot swap + scanner B on the line"


def note_leaks(monitor: dict[str, Any], timeline: dict[str, list], t0: float,
               items_seen: dict[str, int]) -> None:
    """The live leak figures of one monitor pass, per scanner, at the number of that
    scanner's items the line had sent (the safety plot's x axis)."""
    for scanner, state in (monitor.get("scanners") or {}).items():
        items_index = items_seen.get(str(scanner))
        if items_index is None:  # not one of the demo's scanners
            continue
        leak = state.get("leak") or {}
        for version, fig in (leak.get("versions") or {}).items():
            timeline.setdefault("leaks", []).append({
                "t": time.time() - t0, "scanner_id": scanner, "model_version": version,
                "item_index": items_index, "audits": fig.get("audits"),
                "rate": fig.get("rate"), "upper": fig.get("upper"),
                "alarm": bool(fig.get("alarm"))})


def leak_pass(cfg: DictConfig, timeline: dict[str, list], t0: float,
              items_seen: dict[str, int]) -> dict[str, Any]:
    from atr.demo import monitor_pass

    mon = monitor_pass(cfg)
    note_leaks(mon, timeline, t0, items_seen)
    return mon


def recalibration_stages(cfg: DictConfig, url: str, progress: Any, phases: dict[str, Any],
                         timeline: dict[str, list], t0: float, keys: Any) -> dict[str, Any]:
    """Recalibrate scanner B on the champion; if a version is registered: gate, simulated
    approval, hot swap, then scanner B on the line again (phase D)."""
    from atr.demo import phase_line, say, wait_version
    from atr.evaluation.gate import gate
    from atr.registry.approve import approve
    from atr.registry.recalibrate import run as recalibrate
    from atr.stack.tracking import reviewer_from_env

    d = cfg.demo
    base = runtime_overrides(cfg)
    with progress.stage(RECALIBRATION):
        result = recalibrate(compose("recalibrate", merge_overrides(base, [
            f"recalibrate.scanners=[{d.scanner_b}]"])))
        brief = {"registered": bool(result.get("registered")), "version": result.get("version"),
                 "from_version": result.get("from_version"),
                 "scanner": (result.get("scanners") or {}).get(str(d.scanner_b)),
                 "reason": result.get("reason")}
        if brief["registered"]:
            verdict = gate(compose("gate", base))
            brief["gate"] = verdict.get("verdict")
            with reviewer_from_env() as reviewer:  # on the stack: its reviewer account
                approve(compose("approve", base), int(result["version"]),
                        by=None if reviewer else "atr-demo", mode="auto-simulation")
    if not brief["registered"]:
        say(f"recalibration: nothing registered ({brief['reason']})")
        progress.skip(RECALIBRATED, "no threshold certified: scanner B stays in safe mode")
        return brief
    say(f"recalibrated v{brief['version']} approved; scanner B's threshold "
         f"{(brief['scanner'] or {}).get('threshold')}")
    with progress.stage(RECALIBRATED):
        brief["swap_seconds"] = round(wait_version(url, int(result["version"]),
                                                    float(d.swap_timeout_s)), 1)
        timeline["events"].append({"t": time.time() - t0,
                                   "event": f"v{brief['version']} (recalibrated) serving"})
        phases["D"] = phase_line(cfg, url, {"scanner": d.scanner_b, "count": d.items_d},
                                  seed=int(d.seed) + 90_000, prefix="demo-d", feedback=False,
                                  keys=keys)
    return brief


def safety_summary(phases: dict[str, Any], drift: dict[str, Any], timeline: dict[str, list],
                   target: float, scanner_b: str) -> dict[str, Any]:
    """Per scanner and stage of 250 items: the true leak rate, threats cleared, audits,
    safe mode; the time scanner B spent in safe mode, in items and labels."""
    records = line_records(phases, drift)
    labels = sum(int((p.get("feedback") or {}).get("stored", 0))
                 for p in [*drift["chunks"], phases.get("C") or {}])
    mine = [r for r in records if str(r["scanner_id"]) == scanner_b]
    return {
        "scanners": stage_safety(records, target),
        "threats_cleared": sum(1 for r in records if r["threats"] and r["decision"] == "CLEAR"),
        "audits": sum(1 for r in records if r.get("reason") == "audit"),
        "safe_mode_b": {**safe_mode_time(records, scanner_b), "items_b": len(mine),
                        "labels_sent_while_held": labels},
        "leakmonitor_pass": timeline.get("leaks", []),
    }


def line_records(phases: dict[str, Any], drift: dict[str, Any]) -> list[dict[str, Any]]:
    """Every line item of the run, in order: A, the drift chunks, C, D."""
    out = list(phases["A"]["records"])
    out += [r for ch in drift["chunks"] for r in ch["records"]]
    for key in ("C", "D"):
        if key in phases:
            out += phases[key]["records"]
    return out
