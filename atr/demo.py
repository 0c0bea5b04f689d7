"""`atr demo`: the closed loop, end to end, on embedded defaults.

synthesise base data -> train v1 (DVC pipeline) -> gate -> approve -> serve (uvicorn on
loopback) -> the line streams scanner A, then a different scanner -> the monitor detects
drift -> inspection/analyst feedback labels frontline items -> retrain v2 (DVC pipeline)
-> gate -> approve -> the service hot-swaps -> the line streams the new scanner again.

Approvals here are simulated (`approval.mode=auto-simulation` on the version): on a real
line a reviewer moves @champion. The recovery is measured on the line, not assumed.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
from omegaconf import DictConfig

from atr.config import compose, merge_overrides, only, runtime_overrides
from atr.demo_service import ServiceKeys, ServiceProcess
from atr.demo_stages import (
    leak_pass,
    line_records,
    note_leaks,
    recalibration_stages,
    safety_summary,
)

log = logging.getLogger(__name__)


def say(msg: str) -> None:
    print(f"[atr demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _base(cfg: DictConfig) -> list[str]:
    """The demo's runtime paths for jobs without a registry (synth, line)."""
    return only(runtime_overrides(cfg), "paths.")


def _retrain(cfg: DictConfig, make_batch: bool) -> dict[str, Any]:
    """atr.retrain.retrain, the path `atr retrain` takes, with the demo's simulated
    approval: [feedback -> batch (min_items=1)] -> DVC pipeline -> gate -> approve."""
    from atr.retrain import retrain

    return retrain(compose("retrain", merge_overrides(runtime_overrides(cfg), [
        f"retrain.repo={Path(str(cfg.demo.repo)).resolve()}",
        f"retrain.make_batch={str(make_batch).lower()}", "retrain.min_items=1",
        "retrain.auto_approve=true", "retrain.approver=atr-demo"])))


def phase_line(cfg: DictConfig, url: str, phase: dict[str, Any], seed: int, prefix: str,
                feedback: bool, keys: ServiceKeys) -> dict[str, Any]:
    from atr.line.run import simulate

    d = cfg.demo
    spec = "{" + ",".join(f"{k}: {v}" for k, v in phase.items()) + "}"
    line = compose("line", merge_overrides(_base(cfg), [
        f"line.url={url}", f"line.phases=[{spec}]", f"line.count={phase['count']}",
        f"line.seed={seed}", f"line.rate={d.rate}", f"line.image_size={d.image_size}",
        f"line.item_prefix={prefix}", f"line.feedback={str(feedback).lower()}",
        f"line.feedback_share={d.feedback_share}", f"line.audit_share={d.audit_share}",
        *keys.line_overrides()]))
    return simulate(line)


def monitor_pass(cfg: DictConfig) -> dict[str, Any]:
    from atr.monitor.job import run as monitor

    return monitor(compose("monitor", merge_overrides(runtime_overrides(cfg), [
        f"monitor.window_size={cfg.demo.monitor_window}", "monitor.log_to_mlflow=false"])))


def wait_version(url: str, version: int, timeout_s: float) -> float:
    start = time.time()
    while time.time() - start < timeout_s:
        try:
            served = httpx.get(f"{url}/v1/model", timeout=5).json().get("version")
            if str(served) == str(version):
                return time.time() - start
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the service did not switch to version {version} in {timeout_s:.0f} s")


def _drift_phase(cfg: DictConfig, url: str, t0: float, timeline: dict[str, list],
                 keys: ServiceKeys) -> dict:
    """Stream the new scanner in chunks, run the monitor after each, until the label budget
    is spent; returns when drift fired (items after onset) and the feedback sent."""
    d = cfg.demo
    sent, labels, detected_at, chunks = 0, 0, None, []
    while sent < int(d.drift_items):
        n = min(int(d.chunk), int(d.drift_items) - sent)
        feedback = labels + n <= int(d.label_budget)  # never more labels than the budget
        summary = phase_line(cfg, url, {"scanner": d.scanner_b, "count": n},
                              seed=int(d.seed) + 1000 + sent, prefix=f"demo-b{sent}",
                              feedback=feedback, keys=keys)
        chunks.append(summary)
        sent += n
        labels += int(summary.get("feedback", {}).get("stored", 0))
        mon = monitor_pass(cfg)
        note_leaks(mon, timeline, t0, {str(d.scanner_a): int(d.items_a), str(d.scanner_b): sent})
        state = mon["scanners"].get(d.scanner_b, {})
        timeline["monitor"].append({"t": time.time() - t0, "items_after_onset": sent,
                                    "embedding": state.get("embedding"),
                                    "image_stats": state.get("image_stats"),
                                    "drift": bool(state.get("drift"))})
        if state.get("drift") and detected_at is None:
            detected_at = sent
            say(f"drift detected on {d.scanner_b} after {sent} items ({state.get('kind')})")
    return {"chunks": chunks, "detected_after_items": detected_at, "labels_sent": labels}


def run(cfg: DictConfig) -> dict[str, Any]:
    """The loop with the profile's pipeline overlay applied to params.yaml for the run and
    the committed file restored afterwards (pass or fail)."""
    from atr.pipeline_params import PARAMS, apply_overlay

    params = Path(str(cfg.demo.repo)).resolve() / PARAMS
    committed = params.read_text()
    changed = apply_overlay(params.parents[1], list(cfg.demo.pipeline or []))
    if changed:
        say(f"profile: {', '.join(str(x) for x in cfg.demo.pipeline)}")
    try:
        return _loop(cfg)
    finally:
        params.write_text(committed)


def _loop(cfg: DictConfig) -> dict[str, Any]:
    from atr.data.synth import synthesize
    from atr.demo_analyst import analyst_section, real_images, send_real_images
    from atr.demo_progress import Progress
    from atr.demo_report import phase_figures, write_report

    d = cfg.demo
    t0 = time.time()
    progress = Progress(say)
    timeline: dict[str, list] = {"records": [], "monitor": [], "events": []}
    gold = Path(str(cfg.paths.data_dir)) / "gold"
    if (gold / "manifest.parquet").is_file():
        progress.skip("gold set", f"{gold} exists")
    else:
        with progress.stage("gold set"):
            synthesize(compose("synth", merge_overrides(
                _base(cfg), ["preset=gold", f"synth.count={d.gold_count}"])))
    with progress.stage("v1: DVC pipeline (synthesize -> prepare -> train -> evaluate -> "
                        "register) + gate"):
        first = _retrain(cfg, make_batch=False)
    gate1 = first["gate"]
    timeline["events"].append({"t": time.time() - t0, "event": f"v{gate1['challenger']} approved"})
    phases: dict[str, Any] = {}
    real = real_images(cfg)  # the analyst view's real scans, when the folder is given
    scanners = [str(d.scanner_a), str(d.scanner_b), *([str(d.analyst_real_scanner)] * bool(real))]
    with ServiceProcess(cfg, scanners=scanners) as service:
        keys = service.keys  # issued into the demo's runtime (paths.keys_file)
        say(f"service up at {service.url}; scanner A: {d.scanner_a}")
        with progress.stage("scanner A on the line (v1)"):
            phases["A"] = phase_line(cfg, service.url,
                                      {"scanner": d.scanner_a, "count": d.items_a},
                                      seed=int(d.seed), prefix="demo-a", feedback=False,
                                      keys=keys)
        onset = time.time() - t0
        timeline["events"].append({"t": onset, "event": f"scanner switch -> {d.scanner_b}"})
        say(f"scanner switch: {d.scanner_b}")
        with progress.stage("scanner B on the line + monitor (drift, frontline labels)"):
            drift = _drift_phase(cfg, service.url, t0, timeline, keys)
        say(f"{drift['labels_sent']} frontline labels sent; retraining")
        with progress.stage("v2: frontline batch + DVC pipeline + gate"):
            second = _retrain(cfg, make_batch=True)
        retrained, gate2 = second.get("batch", {}), second["gate"]
        say(f"gate v{gate2['challenger']} vs v{gate2['champion']}: {gate2['verdict']}")
        with progress.stage("v2: hot swap"):
            swap_s = wait_version(service.url, gate2["challenger"], float(d.swap_timeout_s))
        timeline["events"].append({"t": time.time() - t0,
                                   "event": f"v{gate2['challenger']} approved + serving"})
        with progress.stage("scanner B on the line (v2)"):
            # labels keep coming back: they are what recalibration certifies a threshold on
            phases["C"] = phase_line(cfg, service.url,
                                      {"scanner": d.scanner_b, "count": d.items_c},
                                      seed=int(d.seed) + 50_000, prefix="demo-c",
                                      feedback=True, keys=keys)
            leak_pass(cfg, timeline, t0, {str(d.scanner_a): int(d.items_a),
                                          str(d.scanner_b): int(d.drift_items) + int(d.items_c)})
        recal = recalibration_stages(cfg, service.url, progress, phases, timeline, t0, keys)
        if real:
            say(f"{send_real_images(cfg, service.url, keys.scanner)} of {len(real)} real "
                f"development-set scans answered (the report's analyst view)")
    figures = phase_figures(phases["A"], drift["chunks"], phases["C"],
                            float(d.target_leak_rate))
    figures["safety"] = safety_summary(phases, drift, timeline, float(d.target_leak_rate),
                                       str(d.scanner_b))
    figures["recalibration"] = recal
    summary = {
        "minutes": round((time.time() - t0) / 60, 2),
        "v1": gate1["challenger"], "v2": gate2["challenger"], "gate_v2": gate2["verdict"],
        "gate_v2_datasets": gate2["datasets"],
        "drift_detected_after_items": drift["detected_after_items"],
        "frontline_labels": drift["labels_sent"], "frontline_batch": retrained,
        "swap_seconds": round(swap_s, 1), **figures,
    }
    with progress.stage("report"):
        report = write_report(Path(str(d.report_dir)), summary, phases, drift, timeline,
                              gate2["markdown"],
                              analyst_section(cfg, line_records(phases, drift)))
    summary["report"] = str(report)
    summary["stage_seconds"] = progress.seconds
    summary["minutes"] = round((time.time() - t0) / 60, 2)
    (report.parent / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    say(f"done in {summary['minutes']} min; report: {report}")
    return summary
