"""The demo's safety figures: per scanner, in stages of 250 line items, what CLEAR did
against the simulator's truth, and whether the line's rules held the leak target.

For each stage: the clear rate, the true leak rate (items not low risk CLEARed, over the
items not low risk) with its one-sided Clopper–Pearson bound, the threat items cleared
(the worst error, which the leak rate mixes with harmless goods), the audits, and the
share of would-be CLEARs held back by safe mode. The plot puts them over time beside the
live leak monitor's estimate and bound (what production knows, from audits only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from atr.line.metrics import truth_metrics
from atr.policy.bounds import clopper_pearson

STAGE_ITEMS = 250


def stage_safety(records: Sequence[dict[str, Any]], target: float,
                 stage_items: int = STAGE_ITEMS) -> dict[str, Any]:
    """Per scanner, per stage of `stage_items` answered items, in line order."""
    out: dict[str, Any] = {}
    for scanner in sorted({str(r["scanner_id"]) for r in records}):
        mine = [r for r in records if str(r["scanner_id"]) == scanner and r["decision"] != "ERROR"]
        stages = []
        for start in range(0, len(mine), stage_items):
            block = mine[start:start + stage_items]
            m = truth_metrics(block)
            versions = sorted({str(r["model_version"]) for r in block})
            stages.append({"first_item": start, "items": len(block), "versions": versions,
                           "auto_clear_rate": m["auto_clear_rate"],
                           "low_risk_clear_rate": m["low_risk_clear_rate"],
                           "leaks": m["leaks"], "leak_rate": m["leak_rate"],
                           "leak_rate_upper": m["leak_rate_upper"],
                           "threats_cleared": m["threats_cleared"], "audits": m["audits"],
                           "safe_mode": m["safe_mode"],
                           "within_target": m["leak_rate"] is None or m["leak_rate"] <= target})
        threats = [r for r in mine if r["threats"]]
        cleared_threats = sum(1 for r in threats if r["decision"] == "CLEAR")
        m = truth_metrics(mine)
        out[scanner] = {
            "stages": stages, "items": len(mine),
            "leaks": m["leaks"], "leak_rate": m["leak_rate"],
            "threats_cleared": cleared_threats, "threat_items": len(threats),
            "threats_cleared_upper": clopper_pearson(cleared_threats, len(threats)).upper
            if threats else None,
            "every_stage_within_target": all(s["within_target"] for s in stages),
            "worst_stage_leak_rate": max((s["leak_rate"] or 0.0 for s in stages), default=None),
        }
    return out


def safe_mode_time(records: Sequence[dict[str, Any]], scanner: str,
                   labels_by_item: Sequence[int] | None = None) -> dict[str, Any]:
    """Items of `scanner` answered while it was in safe mode (a `safe_mode` answer marks the
    span from the first to the last one), from its first item on."""
    mine = [r for r in records if str(r["scanner_id"]) == scanner]
    held = [i for i, r in enumerate(mine) if r.get("reason") == "safe_mode"]
    if not held:
        return {"entered_after_items": None, "items_in_safe_mode": 0, "ended": None}
    return {"entered_after_items": held[0], "items_in_safe_mode": held[-1] - held[0] + 1,
            "ended": held[-1] + 1 < len(mine)}


def safe_mode_spans(records: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """(first, last + 1) item index of each stretch in safe mode: from a `safe_mode` answer
    until the scanner's next CLEAR (the items between, REVIEW or INSPECT anyway, were held
    too)."""
    spans, start = [], None
    for i, r in enumerate(records):
        if r.get("reason") == "safe_mode" and start is None:
            start = i
        elif r["decision"] == "CLEAR" and start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(records)))
    return spans


def safety_plot(records: Sequence[dict[str, Any]], leak_timeline: Sequence[dict[str, Any]],
                target: float, stage_items: int = STAGE_ITEMS) -> Figure:
    """Per scanner: clear rate, true leak rate and the live estimate + bound per stage,
    safe-mode spans shaded."""
    scanners = sorted({str(r["scanner_id"]) for r in records})
    fig = Figure(figsize=(11, 3.2 * len(scanners)))
    axes = np.atleast_1d(fig.subplots(len(scanners), 1, squeeze=False)[:, 0])
    for ax, scanner in zip(axes, scanners, strict=True):
        mine = [r for r in records if str(r["scanner_id"]) == scanner and r["decision"] != "ERROR"]
        x, clear, leak = [], [], []
        for start in range(0, len(mine), stage_items):
            m = truth_metrics(mine[start:start + stage_items])
            x.append(start + stage_items / 2)
            clear.append(m["auto_clear_rate"] or 0.0)
            leak.append(np.nan if m["leak_rate"] is None else m["leak_rate"])
        for start, end in safe_mode_spans(mine):
            ax.axvspan(start, end, color="orange", alpha=0.2, lw=0)
        ax.plot(x, clear, "o-", label="clear rate")
        ax2 = ax.twinx()
        ax2.plot(x, leak, "s-", color="tab:red", label="true leak rate")
        live = [p for p in leak_timeline if p["scanner_id"] == scanner]
        if live:
            ax2.plot([p["item_index"] for p in live], [p["rate"] or 0 for p in live], "^--",
                     color="tab:purple", label="live estimate (audits)")
            ax2.plot([p["item_index"] for p in live], [p["upper"] or np.nan for p in live],
                     ":", color="tab:purple", label="live 95 % upper bound")
        ax2.axhline(target, color="tab:red", ls=":", lw=1)
        ax2.set_ylim(0, max(0.05, target * 4))
        ax.set_ylim(0, 1)
        ax.set_title(f"{scanner} (shaded: safe mode)", fontsize=9)
        ax.set_ylabel("clear rate", fontsize=8)
        ax2.set_ylabel("leak rate", fontsize=8, color="tab:red")
        ax.legend(loc="upper left", fontsize=7)
        ax2.legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("items of the scanner on the line (in order)")
    return fig
