"""Screening performance on the labelled items of a window (feedback from inspections
and analysts): the two rates the policy promises, measured on the line.

  leak rate      share of labelled items not low risk that were decided CLEAR
  threat recall  share of labelled threat items (any threat class 1) decided INSPECT

Low risk is the model's own definition: its first output (`paper_only` or `no_threat`,
atr.policy.taxonomy.LOW_RISK_DEFINITIONS), whose truth column the window carries from the
feedback labels (serving stores both truths whenever a verdict settles them).

Labels arrive late and for few items, so the counts travel with the rates: a leak rate
of 0/3 says little, and the drift rule only acts on enough labelled items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from atr.monitor.reference import score_outputs
from atr.policy.taxonomy import LOW_RISK_DEFINITIONS

# Indicator columns added to both report datasets: 1/0 where the item counts, NaN where
# it does not, so a plain mean over the column is the rate.
LEAK_COLUMN = "leaked_not_low_risk"
RECALL_COLUMN = "inspected_threat"


def low_risk_output(outputs: Sequence[str]) -> str | None:
    """The model's low-risk output (its first, when it is one of the definitions)."""
    return outputs[0] if outputs and outputs[0] in LOW_RISK_DEFINITIONS else None


def threat_outputs(frame: pd.DataFrame | Sequence[str]) -> list[str]:
    outputs = score_outputs(frame) if isinstance(frame, pd.DataFrame) else list(frame)
    return [o for o in outputs if o not in LOW_RISK_DEFINITIONS]


def indicator_columns(frame: pd.DataFrame, threats: Sequence[str] | None = None,
                      low_risk: str | None = None) -> pd.DataFrame:
    """LEAK_COLUMN and RECALL_COLUMN of each row (NaN: unlabelled or not concerned).
    `low_risk`: the truth column of the model's definition (default: its first output)."""
    threats = list(threats if threats is not None else threat_outputs(frame))
    low_risk = low_risk or low_risk_output(score_outputs(frame)) or "paper_only"
    low = frame[low_risk].to_numpy(np.float64) if low_risk in frame else \
        np.full(len(frame), np.nan)
    cleared = (frame["decision"] == "CLEAR").to_numpy()
    inspected = (frame["decision"] == "INSPECT").to_numpy()
    truth = frame[threats].to_numpy(np.float64) if threats else np.zeros((len(frame), 0))
    # An item is a threat item when any threat label is 1; it is known to hold none only
    # when every threat label is given and 0.
    any_threat = np.where((truth == 1).any(axis=1), 1.0,
                          np.where(np.isnan(truth).any(axis=1), np.nan, 0.0)) \
        if truth.shape[1] else np.full(len(frame), np.nan)
    leak = np.where(low == 0, cleared.astype(float), np.nan)
    recall = np.where(any_threat == 1, inspected.astype(float), np.nan)
    return pd.DataFrame({LEAK_COLUMN: leak, RECALL_COLUMN: recall}, index=frame.index)


def performance(frame: pd.DataFrame, threats: Sequence[str] | None = None) -> dict[str, Any]:
    """Counts and rates on the labelled items of `frame` (rates None without items)."""
    threats = list(threats if threats is not None else threat_outputs(frame))
    low_risk = low_risk_output(score_outputs(frame)) or "paper_only"
    ind = indicator_columns(frame, threats, low_risk)
    truth_cols = [c for c in [low_risk, *threats] if c in frame]
    labelled = int(frame[truth_cols].notna().any(axis=1).sum()) if truth_cols else 0
    leak, recall = ind[LEAK_COLUMN].dropna(), ind[RECALL_COLUMN].dropna()
    per_class = {}
    for t in threats:
        positives = frame[t] == 1
        if positives.any():
            hits = int((frame.loc[positives, "decision"] == "INSPECT").sum())
            per_class[t] = {"items": int(positives.sum()), "inspected": hits,
                            "recall": hits / int(positives.sum())}
    return {
        "low_risk": low_risk,
        "labelled": labelled,
        # labelled items not low risk (the leak rate's base; the name predates no_threat)
        "non_paper": len(leak),
        "leaks": int(leak.sum()),
        "leak_rate": float(leak.mean()) if len(leak) else None,
        "threat_items": len(recall),
        "threats_inspected": int(recall.sum()),
        "threat_recall": float(recall.mean()) if len(recall) else None,
        "per_class_recall": per_class,
    }
