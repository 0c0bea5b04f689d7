"""The demo's figures and its HTML report (plots over time, embedded as PNG)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from atr.demo_safety import safety_plot
from atr.line.metrics import clear_rate_at_leak, truth_metrics

# low_risk: the definition (paper_only | no_threat) the served model's CLEAR was calibrated
# under; leaks and low_risk_clear_rate are counted against it (atr/line/metrics.py).
KEYS = ("low_risk", "auto_clear_rate", "low_risk_clear_rate", "paper_only_clear_rate",
        "leak_rate", "threats_cleared", "threat_recall_inspect", "analyst_load")


def phase_figures(a: dict[str, Any], chunks: list[dict[str, Any]], c: dict[str, Any],
                  leak_rate: float) -> dict:
    """Truth metrics per stage: pre-drift (v1, scanner A), drift (v1, scanner B) and
    recovered (v2, scanner B), recomputed from the line's per-item records.

    Two recovery figures: under each model's own policy (what the line did), and at the
    target leak rate (what the model can do there: the policy's threshold also carries
    its calibration's margin and, after a drift, may no longer hold the target).
    """
    drift_records = [r for ch in chunks for r in ch["records"]]
    stages = {"pre_drift": a["records"], "drift": drift_records, "recovered": c["records"]}
    figures = {name: _stage(recs, leak_rate) for name, recs in stages.items()}
    seen = sorted({d for f in figures.values() if f["low_risk"] for d in f["low_risk"].split("+")})
    return {"stages": figures, "target_leak_rate": leak_rate,
            "low_risk": "+".join(seen) or None,
            **_gaps(figures, "paper_only_clear_rate", ""),
            **_gaps(figures, "paper_only_clear_rate_at_target_leak", "_at_target_leak")}


def _stage(records: list[dict[str, Any]], leak_rate: float) -> dict[str, Any]:
    truth = truth_metrics(records)
    return {**{k: truth[k] for k in KEYS}, "items": len(records),
            "paper_only_clear_rate_at_target_leak":
            clear_rate_at_leak(records, leak_rate)["paper_only_clear_rate"]}


def _gaps(figures: dict[str, dict], key: str, suffix: str) -> dict[str, float | None]:
    pre, drift, rec = (figures[s][key] for s in ("pre_drift", "drift", "recovered"))
    return {f"paper_only_clear_drop_points{suffix}": None if None in (pre, drift)
            else round(100 * (pre - drift), 1),
            f"recovery_gap_points{suffix}": None if None in (pre, rec)
            else round(100 * (pre - rec), 1)}


def _rolling(records: list[dict[str, Any]], key: str, window: int = 150) -> np.ndarray:
    vals = []
    for i in range(len(records)):
        chunk = [r for r in records[max(0, i - window + 1): i + 1] if r["decision"] != "ERROR"]
        m = truth_metrics(chunk)[key]
        vals.append(np.nan if m is None else m)
    return np.asarray(vals, dtype=float)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def timeline_plot(records: list[dict[str, Any]], monitor: list[dict[str, Any]],
                  boundaries: list[tuple[int, str]]) -> str:
    fig = Figure(figsize=(11, 11))
    axes = fig.subplots(5, 1, sharex=True)
    x = np.arange(len(records))
    for ax, key, label in zip(axes[:4], ("paper_only_clear_rate", "auto_clear_rate",
                                         "leak_rate", "threat_recall_inspect"),
                              ("paper-only clear rate", "auto-clear rate", "leak rate",
                               "threat recall at INSPECT"), strict=True):
        ax.plot(x, _rolling(records, key), lw=1.2)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    versions = [float(r["model_version"]) if r["model_version"] else np.nan for r in records]
    axes[4].step(x, versions, where="post", color="black")
    axes[4].set_ylabel("model version in service", fontsize=8)
    axes[4].set_xlabel("items on the line (in order)")
    ax2 = axes[0].twinx()
    ax2.plot([m["item_index"] for m in monitor], [m["embedding"] or 0 for m in monitor],
             "o--", color="tab:red", label="embedding drift (MMD)")
    ax2.set_ylabel("embedding drift", color="tab:red", fontsize=8)
    for idx, text in boundaries:
        for ax in axes:
            ax.axvline(idx, color="grey", ls=":")
        axes[0].annotate(text, (idx, 1.02), xycoords=("data", "axes fraction"), fontsize=7)
    return _png(fig)


def write_report(out_dir: Path, summary: dict[str, Any], phases: dict[str, Any],
                 drift: dict[str, Any], timeline: dict[str, Any], gate_md: str,
                 analyst_html: str = "") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    records = list(phases["A"]["records"])
    boundaries = [(len(records), "scanner switch")]
    records += [r for ch in drift["chunks"] for r in ch["records"]]
    onset = boundaries[0][0]
    monitor = [{**m, "item_index": onset + m["items_after_onset"]} for m in timeline["monitor"]]
    boundaries.append((len(records), "v2 approved"))
    records += phases["C"]["records"]
    if "D" in phases:
        boundaries.append((len(records), "recalibrated"))
        records += phases["D"]["records"]
    plot = timeline_plot(records, monitor, boundaries)
    safety = summary.get("safety") or {}
    safety_png = _png(safety_plot(records, safety.get("leak_monitor") or [],
                                  float(summary["target_leak_rate"]))) if safety else ""
    safety_rows = "".join(
        f"<tr><td>{html.escape(sc)}</td><td>{st['first_item']}</td><td>{st['items']}</td>"
        f"<td>{'+'.join(st['versions'])}</td><td>{_fmt(st['auto_clear_rate'])}</td>"
        f"<td>{st['leaks']}</td><td>{_fmt(st['leak_rate'])}</td>"
        f"<td>{_fmt(st['leak_rate_upper'])}</td><td>{st['threats_cleared']}</td>"
        f"<td>{st['audits']}</td><td>{st['safe_mode']}</td></tr>"
        for sc, fig in (safety.get("scanners") or {}).items() for st in fig["stages"])
    rows = "".join(f"<tr><td>{html.escape(s)}</td>" + "".join(
        f"<td>{_fmt(v)}</td>" for v in figs.values()) + "</tr>"
        for s, figs in summary["stages"].items())
    head = "".join(f"<th>{k}</th>" for k in next(iter(summary["stages"].values())))
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>ATR demo</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}td,th{{padding:3px 8px;
border-bottom:1px solid #ddd}}pre{{background:#f6f6f6;padding:8px;overflow:auto}}</style>
</head><body><h1>ATR closed loop</h1>
<p>v{summary['v1']} served scanner A, the line switched scanner, the monitor flagged drift
after {summary['drift_detected_after_items']} items, {summary['frontline_labels']} frontline
labels came back, v{summary['v2']} was retrained, gated ({html.escape(summary['gate_v2'])})
and approved; the service swapped in {summary['swap_seconds']} s.</p>
<p>Low risk (the evidence CLEAR needs, the definition the served models were calibrated
under): <b>{html.escape(str(summary.get('low_risk') or 'n/a'))}</b>.</p>
<h2>Figures per stage (line items, truth from the simulator)</h2>
<table><tr><th>stage</th>{head}</tr>{rows}</table>
<h2>Over time</h2><img src="data:image/png;base64,{plot}" width="100%">
<h2>Safety per scanner, in stages of 250 items</h2>
<p>The leak bound as the line kept it: true leak rate (simulator truth) per stage with its
95 % Clopper–Pearson bound, threat items cleared, audits, would-be CLEARs held by safe mode.
Threat items cleared over the run: <b>{safety.get('threats_cleared', 'n/a')}</b>.</p>
<table><tr><th>scanner</th><th>first item</th><th>items</th><th>versions</th><th>clear rate</th>
<th>leaks</th><th>leak rate</th><th>upper</th><th>threats cleared</th><th>audits</th>
<th>safe mode</th></tr>{safety_rows}</table>
{f'<img src="data:image/png;base64,{safety_png}" width="100%">' if safety_png else ''}
{analyst_html}
<h2>Gate of v{summary['v2']}</h2><pre>{html.escape(gate_md)}</pre>
<h2>Summary</h2><pre>{html.escape(json.dumps(summary, indent=2, default=str))}</pre>
</body></html>"""
    path = out_dir / "report.html"
    path.write_text(doc)
    return path
