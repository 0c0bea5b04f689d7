"""Figures of a policy's behaviour, written as PNG files (the registry logs them to MLflow).

Built on matplotlib's object API with the Agg canvas, never pyplot: no global
backend switch, no GUI, safe in servers, workers and notebooks alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from atr.policy.decision import Decision, Policy
from atr.policy.safety_metrics import truth_category


def plot_decision_confusion(report: Mapping[str, Any], path: str | Path) -> Path:
    """Heatmap of decisions (columns) against truth category (rows) from `policy_report`.

    The rows are the report's own truth groups, so they name its low-risk definition."""
    decisions = [d.value for d in Decision]
    groups = list(report["confusion"])
    counts = np.array(
        [[report["confusion"][t][d] for d in decisions] for t in groups], dtype=float
    )
    # Colour by share of the row so that the rare threat row is as readable as the others.
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)

    fig = Figure(figsize=(5.5, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(len(groups)):
        for j in range(len(decisions)):
            ax.text(j, i, f"{int(counts[i, j])}\n{shares[i, j]:.1%}", ha="center", va="center",
                    color="white" if shares[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(len(decisions)), decisions)
    ax.set_yticks(range(len(groups)), groups)
    ax.set_xlabel("decision")
    ax.set_ylabel("truth")
    mode = " — TRIAGE ONLY" if report.get("policy_mode") == "triage_only" else ""
    ax.set_title(f"Decisions vs truth (n={report['n']}, low risk = "
                 f"{report.get('low_risk', 'paper_only')}){mode}")
    fig.colorbar(image, ax=ax, label="share of row")
    return _save(fig, path)


def leak_vs_auto_clear(
    policy: Policy, scores: ArrayLike, truth_low_risk: ArrayLike, truth_threats: ArrayLike
) -> dict[str, np.ndarray]:
    """Leak rate and auto-clear rate at every clear threshold, the other thresholds held fixed.

    For a triage-only policy this is what CLEAR would trade were it certified."""
    s = np.asarray(scores, dtype=np.float64)
    nonpaper = truth_category(truth_low_risk, truth_threats, policy.low_risk) != policy.low_risk
    threat = s[:, 1:]
    inspect_at = np.array([policy.inspect_thresholds[t] for t in policy.threats])
    guard_at = np.array([policy.clear_guards.get(t, np.inf) for t in policy.threats])
    eligible = ~np.any(threat >= inspect_at, axis=1) & np.all(threat < guard_at, axis=1)

    order = np.argsort(-s[:, 0], kind="stable")
    ranked = s[order, 0]
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    cleared = np.cumsum(eligible[order])[ends]
    leaks = np.cumsum((eligible & nonpaper)[order])[ends]
    return {
        "threshold": ranked[ends],
        "auto_clear_rate": cleared / len(s),
        "leak_rate": leaks / max(int(nonpaper.sum()), 1),
    }


def plot_leak_vs_auto_clear(
    policy: Policy,
    scores: ArrayLike,
    truth_low_risk: ArrayLike,
    truth_threats: ArrayLike,
    path: str | Path,
) -> Path:
    """The trade-off the clear threshold buys: automation against leaks, with the target."""
    curve = leak_vs_auto_clear(policy, scores, truth_low_risk, truth_threats)
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(curve["auto_clear_rate"], curve["leak_rate"], lw=1.5, label="clear threshold sweep")
    target = policy.targets.get("leak_rate_target")
    if target is not None:
        ax.axhline(target, color="red", ls="--", lw=1, label=f"leak target {target:g}")
    if not policy.clears_nothing:
        at = np.searchsorted(-curve["threshold"], -policy.clear_threshold, side="right") - 1
        if at >= 0:
            ax.plot(curve["auto_clear_rate"][at], curve["leak_rate"][at], "o", color="black",
                    label=f"policy (threshold {policy.clear_threshold:.3f})")
    ax.set_xlabel("auto-clear rate (share of all items CLEAR)")
    ax.set_ylabel(f"leak rate (items not {policy.low_risk} CLEAR)")
    # Zoom on the region around the target: the far end of the curve (leak -> 1) says nothing.
    ax.set_ylim(0, 4 * target if target else None)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    mode = " — TRIAGE ONLY: never clears" if policy.triage_only else ""
    ax.set_title(f"Leak rate vs auto-clear rate (low risk = {policy.low_risk}){mode}")
    return _save(fig, path)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
