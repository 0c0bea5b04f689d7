"""Per-output ranking metrics (AUROC, average precision) on a scored frame.

These describe the network alone, before any threshold; the policy report
(`atr.policy.safety_metrics`) describes what the line would do with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from atr.evaluation.scoring import score_column


def ranking_metrics(frame: pd.DataFrame, outputs: Sequence[str]) -> dict[str, Any]:
    """{"auroc": {output: float|None}, "ap": {...}, "positives": {...}, "negatives": {...}}.

    A class with no positives or no negatives in the split has no defined AUROC
    or AP: it is reported as None (null in JSON) rather than a misleading 0 or 1.
    """
    auroc: dict[str, float | None] = {}
    ap: dict[str, float | None] = {}
    positives: dict[str, int] = {}
    negatives: dict[str, int] = {}
    for output in outputs:
        truth = frame[output].to_numpy(dtype=np.int64)
        score = frame[score_column(output)].to_numpy(dtype=np.float64)
        pos = int(truth.sum())
        positives[output], negatives[output] = pos, int(len(truth) - pos)
        if 0 < pos < len(truth):
            auroc[output] = float(roc_auc_score(truth, score))
            ap[output] = float(average_precision_score(truth, score))
        else:
            auroc[output] = ap[output] = None
    return {
        "auroc": auroc,
        "ap": ap,
        "positives": positives,
        "negatives": negatives,
        "macro_auroc": _mean(auroc.values()),
        "macro_ap": _mean(ap.values()),
    }


def _mean(values: Any) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None
