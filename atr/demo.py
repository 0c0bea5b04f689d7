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
from omegaconf import DictConfig, OmegaConf

from atr.config import compose
from atr.demo_service import ServiceProcess
from atr.retrain import dvc_repro

log = logging.getLogger(__name__)


def _say(msg: str) -> None:
    print(f"[atr demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _base(cfg: DictConfig) -> list[str]:
    paths = OmegaConf.to_container(cfg.paths, resolve=True)
    return [f"paths.{k}={paths[k]}" for k in ("root", "data_dir", "artifacts_dir")]


def _model(cfg: DictConfig) -> list[str]:
    return [f"registry.model_name={cfg.registry.model_name}"]


def _phase_line(cfg: DictConfig, url: str, phase: dict[str, Any], seed: int, prefix: str,
                feedback: bool) -> dict[str, Any]:
    from atr.line.run import simulate

    d = cfg.demo
    spec = "{" + ",".join(f"{k}: {v}" for k, v in phase.items()) + "}"
    line = compose("line", [*_base(cfg), f"line.url={url}", f"line.phases=[{spec}]",
                            f"line.count={phase['count']}", f"line.seed={seed}",
                            f"line.rate={d.rate}", f"line.image_size={d.image_size}",
                            f"line.item_prefix={prefix}", f"line.feedback={str(feedback).lower()}",
                            f"line.feedback_share={d.feedback_share}",
                            f"line.audit_share={d.audit_share}",
                            f"line.api_key={d.api_key}"])
    return simulate(line)


def _approve(cfg: DictConfig, version: int) -> None:
    from atr.registry.approve import approve

    approve(compose("approve", [*_base(cfg), *_model(cfg)]), version, by="atr-demo",
            mode="auto-simulation")


def _gate(cfg: DictConfig) -> dict[str, Any]:
    from atr.evaluation.gate import gate

    result = gate(compose("gate", [*_base(cfg), *_model(cfg)]))
    return {k: result[k] for k in ("verdict", "datasets", "challenger", "champion", "markdown")}


def _monitor(cfg: DictConfig) -> dict[str, Any]:
    from atr.monitor.job import run as monitor

    return monitor(compose("monitor", [*_base(cfg), *_model(cfg),
                                       f"monitor.window_size={cfg.demo.monitor_window}",
                                       "monitor.log_to_mlflow=false"]))


def _wait_version(url: str, version: int, timeout_s: float) -> float:
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


def _drift_phase(cfg: DictConfig, url: str, t0: float, timeline: dict[str, list]) -> dict:
    """Stream the new scanner in chunks, run the monitor after each, until the label budget
    is spent; returns when drift fired (items after onset) and the feedback sent."""
    d = cfg.demo
    sent, labels, detected_at, chunks = 0, 0, None, []
    while sent < int(d.drift_items):
        n = min(int(d.chunk), int(d.drift_items) - sent)
        feedback = labels + n <= int(d.label_budget)  # never more labels than the budget
        summary = _phase_line(cfg, url, {"scanner": d.scanner_b, "count": n},
                              seed=int(d.seed) + 1000 + sent, prefix=f"demo-b{sent}",
                              feedback=feedback)
        chunks.append(summary)
        sent += n
        labels += int(summary.get("feedback", {}).get("stored", 0))
        mon = _monitor(cfg)
        state = mon["scanners"].get(d.scanner_b, {})
        timeline["monitor"].append({"t": time.time() - t0, "items_after_onset": sent,
                                    "embedding": state.get("embedding"),
                                    "image_stats": state.get("image_stats"),
                                    "drift": bool(state.get("drift"))})
        if state.get("drift") and detected_at is None:
            detected_at = sent
            _say(f"drift detected on {d.scanner_b} after {sent} items ({state.get('kind')})")
    return {"chunks": chunks, "detected_after_items": detected_at, "labels_sent": labels}


def run(cfg: DictConfig) -> dict[str, Any]:
    from atr.data.synth import synthesize
    from atr.demo_report import phase_figures, write_report

    d = cfg.demo
    repo = Path(str(d.repo)).resolve()
    t0 = time.time()
    env = {"ATR_RUNTIME": str(cfg.paths.root)}
    timeline: dict[str, list] = {"records": [], "monitor": [], "events": []}
    gold = Path(str(cfg.paths.data_dir)) / "gold"
    if not (gold / "manifest.parquet").is_file():
        _say("synthesising the frozen gold set")
        synthesize(compose("synth", [*_base(cfg), "preset=gold", f"synth.count={d.gold_count}"]))
    _say("v1: dvc repro (synthesize -> prepare -> train -> evaluate -> register)")
    dvc_repro(repo, env)
    gate1 = _gate(cfg)
    _approve(cfg, gate1["challenger"])
    timeline["events"].append({"t": time.time() - t0, "event": f"v{gate1['challenger']} approved"})
    phases: dict[str, Any] = {}
    with ServiceProcess(cfg, api_key=str(d.api_key)) as service:
        _say(f"service up at {service.url}; scanner A: {d.scanner_a}")
        phases["A"] = _phase_line(cfg, service.url, {"scanner": d.scanner_a, "count": d.items_a},
                                  seed=int(d.seed), prefix="demo-a", feedback=False)
        onset = time.time() - t0
        timeline["events"].append({"t": onset, "event": f"scanner switch -> {d.scanner_b}"})
        _say(f"scanner switch: {d.scanner_b}")
        drift = _drift_phase(cfg, service.url, t0, timeline)
        _say(f"{drift['labels_sent']} frontline labels sent; retraining")
        retrained = dvc_repro_with_batch(cfg, repo, env)
        gate2 = _gate(cfg)
        _say(f"gate v{gate2['challenger']} vs v{gate2['champion']}: {gate2['verdict']}")
        _approve(cfg, gate2["challenger"])
        swap_s = _wait_version(service.url, gate2["challenger"], float(d.swap_timeout_s))
        timeline["events"].append({"t": time.time() - t0,
                                   "event": f"v{gate2['challenger']} approved + serving"})
        phases["C"] = _phase_line(cfg, service.url, {"scanner": d.scanner_b, "count": d.items_c},
                                  seed=int(d.seed) + 50_000, prefix="demo-c", feedback=False)
    figures = phase_figures(phases["A"], drift["chunks"], phases["C"],
                            float(d.target_leak_rate))
    summary = {
        "minutes": round((time.time() - t0) / 60, 2),
        "v1": gate1["challenger"], "v2": gate2["challenger"], "gate_v2": gate2["verdict"],
        "gate_v2_datasets": gate2["datasets"],
        "drift_detected_after_items": drift["detected_after_items"],
        "frontline_labels": drift["labels_sent"], "frontline_batch": retrained,
        "swap_seconds": round(swap_s, 1), **figures,
    }
    report = write_report(Path(str(d.report_dir)), summary, phases, drift, timeline,
                          gate2["markdown"])
    summary["report"] = str(report)
    (report.parent / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    _say(f"done in {summary['minutes']} min; report: {report}")
    return summary


def dvc_repro_with_batch(cfg: DictConfig, repo: Path, env: dict[str, str]) -> dict[str, Any]:
    """Feedback -> data/frontline/<batch>, then the same DVC pipeline as v1."""
    from atr.labels.job import batch

    written = batch(compose("labels", [*_base(cfg), "labels.min_items=1"]))
    dvc_repro(repo, env)
    return {k: written.get(k) for k in ("batch", "items", "path") if k in written}
