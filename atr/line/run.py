"""`atr line`: render the plan's parcels, stream them to the service, report what it did.

`simulate(cfg)` returns everything (per-phase figures and per-item records, for the
demo's plots); `run(cfg)` is the CLI job: it prints a table and returns the summary
without the records (they go to `line.out` when set), so the terminal stays readable.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx
from omegaconf import DictConfig, OmegaConf

from atr.line import feedback as fb
from atr.line.analyst_view import line_items, pick, write_view
from atr.line.metrics import block_summary, record, schedule_lag_ms
from atr.line.parcels import Parcel, render_parcels
from atr.line.plan import Phase, item_ids_and_seeds, phases_from_cfg
from atr.line.replay import replay_parcels, resolve_counts
from atr.line.sender import RequestFn, Shot, fire, wait_ready
from atr.policy.taxonomy import Taxonomy


def scan_request(parcels: list[Parcel], api_key: str | None = None) -> RequestFn:
    """POST /v1/scans with the image file as the body, ids as query parameters and the
    scanner key (line.api_key) as X-API-Key."""
    auth = {"X-API-Key": api_key} if api_key else {}

    def send(client: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
        p = parcels[i]
        return client.post("/v1/scans", content=p.png,
                           params={"item_id": p.item_id, "scanner_id": p.scanner_id},
                           headers={"Content-Type": p.content_type, **auth})

    return send


def served_input(url: str, timeout_s: float) -> tuple[str, str]:
    """(manifest column the served model reads, "NAME vVERSION") from GET /v1/model. A
    service that does not say (older than `input`) reads the pseudo-colour `image`."""
    resp = httpx.get(f"{url}/v1/model", timeout=timeout_s, trust_env=False)
    resp.raise_for_status()
    body = resp.json()
    column = str((body.get("input") or {}).get("column") or "image")
    return column, f"{body.get('name')} v{body.get('version')}, reads {column!r}"


def line_parcels(phases: list[Phase], taxonomy: Taxonomy, line: DictConfig,
                 column: str, model: str) -> list[Parcel]:
    """Every parcel of the plan in line order: simulated phases rendered, replay phases
    read from their dataset folders; item ids run on across both."""
    seed, prefix = int(line.seed), str(line.item_prefix)
    ids = iter(item_id for item_id, _ in item_ids_and_seeds(phases, seed, prefix))
    # Replays first: a dataset the model cannot read is refused before any rendering.
    replayed = {}
    for ph in phases:
        phase_ids = [next(ids) for _ in range(ph.count)]
        if ph.replay:
            replayed[ph.index] = replay_parcels(ph, phase_ids, taxonomy, column, seed, model)
    simulated = iter(render_parcels(phases, taxonomy, int(line.image_size), seed, prefix,
                                    int(line.render_workers), column))
    parcels: list[Parcel] = []
    for ph in phases:
        parcels += replayed[ph.index] if ph.replay else [next(simulated) for _ in range(ph.count)]
    return parcels


def summarise(phases: list[Phase], parcels: list[Parcel], shots: list[Shot],
              records: list[dict[str, Any]], wall_s: float,
              target_leak_rate: float | None = None) -> dict[str, Any]:
    per_phase = []
    for ph in phases:
        idx = [i for i, p in enumerate(parcels) if p.phase == ph.index]
        source = ({"dataset": ph.dataset, "split": ph.split} if ph.replay else
                  {"mix": ph.mix, "ageing_years": ph.ageing_years})
        per_phase.append({"phase": ph.index, "name": ph.name, "scanner": ph.scanner, **source,
                          **block_summary([records[i] for i in idx], [shots[i] for i in idx],
                                          target_leak_rate)})
    overall = block_summary(records, shots, target_leak_rate)
    overall["throughput_per_s"] = round(overall["answered"] / wall_s, 2) if wall_s > 0 else None
    return {"overall": overall, "phases": per_phase}


def simulate(cfg: DictConfig) -> dict[str, Any]:
    line = cfg.line
    taxonomy = Taxonomy.from_dict(OmegaConf.to_container(cfg.taxonomy, resolve=True))
    phases = phases_from_cfg(line)
    url = str(line.url).rstrip("/")
    rate = float(line.rate) if line.rate else None
    concurrency, timeout = int(line.concurrency), float(line.timeout_s)

    # The service first: what its model reads decides what the line sends.
    asyncio.run(wait_ready(url, timeout_s=float(line.ready_timeout_s)))
    column, model = served_input(url, timeout)
    phases = resolve_counts(phases)
    t = time.perf_counter()
    parcels = line_parcels(phases, taxonomy, line, column, model)
    render_s = time.perf_counter() - t

    shots, wall_s = asyncio.run(fire(url, scan_request(parcels, line.api_key), len(parcels),
                                     rate=rate, concurrency=concurrency, timeout_s=timeout))
    records = [record(p, s, taxonomy) for p, s in zip(parcels, shots, strict=True)]
    summary: dict[str, Any] = {
        "url": url,
        "mode": "open-loop" if rate else "closed-loop",
        "offered_rate_per_s": rate,
        "concurrency": None if rate else concurrency,
        "count": len(parcels),
        "sent_column": column,
        "image_size": int(line.image_size),
        "render_s": round(render_s, 2),
        "wall_s": round(wall_s, 3),
        "schedule_lag_max_ms": schedule_lag_ms(shots) if rate else None,
        **summarise(phases, parcels, shots, records, wall_s,
                    None if line.target_leak_rate is None else float(line.target_leak_rate)),
    }
    # The service's own audits are always opened and answered, even without feedback.
    audits = any(r.get("reason") == "audit" for r in records)
    keys = {"inspection": line.inspection_key, "analyst": line.analyst_key}
    if line.feedback or (audits and line.inspection_key):
        on = bool(line.feedback)
        summary["feedback"] = asyncio.run(fb.send_feedback(
            url, parcels, records, share=float(line.feedback_share) if on else 0.0,
            seed=int(line.seed), keys=keys, who=str(line.who), timeout_s=timeout,
            audit_share=float(line.audit_share) if on else 0.0, taxonomy=taxonomy))
    summary["records"] = records
    if line.out:
        out = Path(str(line.out))
        out.parent.mkdir(parents=True, exist_ok=True)
        shown = pick(line_items(parcels, records, taxonomy), int(line.analyst_view or 0))
        if shown:
            view = write_view(out.with_suffix(".analyst.html"), shown)
            summary["analyst_view"] = {"path": str(view), "items": len(shown)}
        out.write_text(json.dumps(summary, indent=1) + "\n")
        summary["out"] = str(out)
    return summary


def _pct(v: float | None) -> str:
    return "   -  " if v is None else f"{100 * v:5.1f}%"


def report_text(summary: dict[str, Any]) -> str:
    o = summary["overall"]
    lat = o["latency_ms"]
    head = (f"{summary['mode']} to {summary['url']}: {o['answered']}/{summary['count']} answered"
            f" ({o['errors']} errors) in {summary['wall_s']:.1f} s = "
            f"{o['throughput_per_s']} items/s"
            + (f" (offered {summary['offered_rate_per_s']}/s, worst client lag "
               f"{summary['schedule_lag_max_ms']} ms)" if summary["offered_rate_per_s"] else ""))
    # Which definition of low risk the served model's CLEAR was calibrated under: the
    # low-clr column and the leaks are counted against it (paper-only: only paper visible).
    low_risk = o.get("low_risk") or "n/a"
    lines = [head, f"latency ms: p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  "
                   f"max {lat['max']}",
             f"low risk (CLEAR evidence, the served model's calibration): {low_risk}",
             "phase                          n  auto-clr  low-clr leaks thr-clr recall "
             "analyst @leak  p99ms  versions"]
    for b in [*summary["phases"], {"name": "all", **o}]:
        at = b.get("at_target_leak") or {}
        lines.append(
            f"{b['name'][:28]:<28} {b['count']:>5} {_pct(b['auto_clear_rate'])} "
            f"{_pct(b.get('low_risk_clear_rate', b.get('paper_only_clear_rate')))}  "
            f"{b['leaks']:>4} {b['threats_cleared']:>6} "
            f"{_pct(b['threat_recall_inspect'])} {_pct(b['analyst_load'])} "
            f"{_pct(at.get('low_risk_clear_rate', at.get('paper_only_clear_rate')))} "
            f"{b['latency_ms']['p99'] or 0:>6.1f}  {b['model_versions']}")
    if o.get("at_target_leak"):
        lines.append(f"@leak: low-risk ({low_risk}) items cleared at a "
                     f"{100 * o['at_target_leak']['leak_rate']:g} % leak rate, threshold set "
                     "on this run's truth (the policy plays no part)")
    share = o.get("audit_share")
    lines.append(f"line rules: {o.get('audits', 0)} audits ({_pct(share).strip()} of would-be "
                 f"CLEARs), {o.get('safe_mode', 0)} held by safe mode, "
                 f"{o.get('implausible', 0)} implausible images")
    if "feedback" in summary:
        f = summary["feedback"]
        lines.append(f"feedback: {f['stored']}/{f['sent']} stored {f['by_source']}"
                     + (f", errors {f['first_errors']}" if f["failed"] else ""))
    if "analyst_view" in summary:
        v = summary["analyst_view"]
        lines.append(f"analyst view: {v['items']} REVIEW/INSPECT items with their boxes in "
                     f"{v['path']}")
    return "\n".join(lines)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Job for `atr line`."""
    summary = simulate(cfg)
    print(report_text(summary), flush=True)
    slim = {k: v for k, v in summary.items() if k != "records"}
    return slim
