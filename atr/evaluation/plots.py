"""Evaluation figures (PNG): ROC/PR per output, decision confusion, reliability,
leak-vs-auto-clear trade-off, and a grid of sample test images.

Each function draws from a scored frame (`atr.evaluation.scoring`) and writes
one file; matplotlib's Agg backend so that it runs headless in the pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from atr.evaluation.scoring import score_column, score_matrix  # noqa: E402

DECISIONS = ("CLEAR", "REVIEW", "INSPECT")


def truth_groups(outputs: Sequence[str]) -> tuple[str, str, str]:
    """The three truth groups of the low-risk definition outputs[0], as the report names
    them (atr.policy.safety_metrics.TRUTH_GROUPS), so plots and report agree."""
    from atr.policy.safety_metrics import truth_categories

    return truth_categories(outputs[0])


def truth_group(frame: pd.DataFrame, outputs: Sequence[str]) -> np.ndarray:
    """What each item really is, in the three groups the decisions are judged by; the
    low-risk truth is the column outputs[0], the threats outputs[1:]."""
    from atr.policy.safety_metrics import truth_category

    threats = list(outputs[1:])
    truth = frame[threats].to_numpy().reshape(len(frame), len(threats))
    return truth_category(frame[outputs[0]].to_numpy(), truth, outputs[0])


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_roc_pr(frame: pd.DataFrame, outputs: Sequence[str], path: Path) -> Path:
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(11, 5))
    for output in outputs:
        truth = frame[output].to_numpy(dtype=int)
        if truth.min() == truth.max():  # one class only: no curve to draw
            continue
        score = frame[score_column(output)].to_numpy()
        fpr, tpr, _ = roc_curve(truth, score)
        prec, rec, _ = precision_recall_curve(truth, score)
        ax_roc.plot(fpr, tpr, label=output)
        ax_pr.plot(rec, prec, label=f"{output} (n+={truth.sum()})")
    ax_roc.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC per output")
    ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall per output")
    for ax in (ax_roc, ax_pr):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7, loc="lower right" if ax is ax_roc else "lower left")
    return _save(fig, path)


def plot_decision_confusion(frame: pd.DataFrame, outputs: Sequence[str], path: Path) -> Path:
    groups, names = truth_group(frame, outputs), truth_groups(outputs)
    counts = np.array(
        [[int(((groups == g) & (frame["decision"] == d)).sum()) for d in DECISIONS]
         for g in names]
    )
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.imshow(counts, cmap="Blues")
    for i, j in np.ndindex(counts.shape):
        ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                color="white" if counts[i, j] > counts.max() / 2 else "black")
    ax.set_xticks(range(len(DECISIONS)), DECISIONS)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="decision", ylabel="truth",
           title=f"decisions by truth group (low risk = {outputs[0]})")
    return _save(fig, path)


def plot_reliability(
    frame: pd.DataFrame, outputs: Sequence[str], path: Path, bins: int = 10
) -> Path:
    """Reliability diagram: observed positive rate against mean score, per score bin."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    edges = np.linspace(0, 1, bins + 1)
    for output in outputs:
        score = frame[score_column(output)].to_numpy(dtype=float)
        truth = frame[output].to_numpy(dtype=float)
        idx = np.clip(np.digitize(score, edges[1:-1]), 0, bins - 1)
        filled = [b for b in range(bins) if (idx == b).any()]
        ax.plot([score[idx == b].mean() for b in filled],
                [truth[idx == b].mean() for b in filled], "o-", ms=3, label=output)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfect calibration")
    ax.set(xlabel="mean predicted probability", ylabel="observed frequency",
           title="reliability diagram", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7)
    return _save(fig, path)


def leak_clear_curve(frame: pd.DataFrame, policy: Any, outputs: Sequence[str]) -> pd.DataFrame:
    """Auto-clear rate and leak rate as the clear threshold sweeps, other thresholds fixed.

    Leak rate: share of items not low risk (outputs[0] == 0) decided CLEAR. The threat
    thresholds and guards stay as calibrated, so the curve shows what moving only the
    clear threshold would trade (for a triage-only policy: what CLEAR would trade were
    it certified).
    """
    scores = score_matrix(frame, outputs)
    valid = np.all(np.isfinite(scores) & (scores >= 0.0) & (scores <= 1.0), axis=1)
    inspect_at = np.array([policy.inspect_thresholds[t] for t in outputs[1:]])
    guard_at = np.array([policy.clear_guards.get(t, np.inf) for t in outputs[1:]])
    # What decide() would CLEAR at threshold 0: valid, no threat at INSPECT, under the guards.
    eligible = (valid & ~np.any(scores[:, 1:] >= inspect_at, axis=1)
                & np.all(scores[:, 1:] < guard_at, axis=1))
    paper_score = scores[:, 0]
    non_paper = frame[outputs[0]].to_numpy() == 0
    thresholds = np.unique(np.concatenate([paper_score, [0.0, 1.0]]))
    rows = []
    for t in thresholds:
        clear = eligible & (paper_score >= t)
        leak = float(clear[non_paper].mean()) if non_paper.any() else 0.0
        rows.append({"threshold": float(t), "auto_clear_rate": float(clear.mean()),
                     "leak_rate": leak})
    return pd.DataFrame(rows)


def plot_leak_vs_clear(
    frame: pd.DataFrame, policy: Any, outputs: Sequence[str], path: Path
) -> Path:
    curve = leak_clear_curve(frame, policy, outputs)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.plot(curve["auto_clear_rate"], curve["leak_rate"], "-", label="sweep clear threshold")
    clear = frame["decision"] == "CLEAR"
    non_paper = frame[outputs[0]] == 0
    leak = float((clear & non_paper).sum() / max(int(non_paper.sum()), 1))
    ax.plot([clear.mean()], [leak], "r*", ms=12, label="calibrated policy")
    target = (policy.targets or {}).get("leak_rate_target")
    if target is not None:
        ax.axhline(float(target), color="r", ls=":", lw=0.8, label="leak target")
    mode = ", TRIAGE ONLY: never clears" if getattr(policy, "triage_only", False) else ""
    ax.set(xlabel="auto-clear rate (all items)", ylabel=f"leak rate (items not {outputs[0]})",
           title=f"leak vs auto-clear (low risk = {outputs[0]}{mode})", xlim=(0, 1))
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_sample_grid(
    frame: pd.DataFrame, images: Sequence[np.ndarray], outputs: Sequence[str], path: Path
) -> Path:
    """Images with their decision, truth and top scores (frame rows match `images`)."""
    n = len(images)
    cols = min(4, max(n, 1))
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.3 * rows), squeeze=False)
    colours = {"CLEAR": "green", "REVIEW": "orange", "INSPECT": "red"}
    for ax, (_, row), img in zip(axes.flat, frame.iterrows(), images, strict=False):
        ax.imshow(img)
        top = sorted(outputs, key=lambda o: -float(row[score_column(o)]))[:2]
        truth = [o for o in outputs if int(row[o]) == 1] or [truth_groups(outputs)[1]]
        lines = [f"{row['decision']} ({row['reason']})", "truth: " + ",".join(truth)]
        lines += [f"{o}: {float(row[score_column(o)]):.2f}" for o in top]
        ax.set_title("\n".join(lines), fontsize=7, color=colours.get(row["decision"], "black"))
    for ax in axes.flat:
        ax.axis("off")
    return _save(fig, path)
