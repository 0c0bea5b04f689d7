"""Drift scores of one window against the reference, with Evidently's own methods.

Four signals, each one number per window (higher = more drift):

  embedding    EmbeddingsDrift method on the model's embedding (see EMBEDDING_METHODS)
  scores       max over model outputs of the normed Wasserstein distance of the scores
  decisions    Jensen-Shannon distance of the CLEAR/REVIEW/INSPECT mix
  image_stats  max over image statistics of the normed Wasserstein distance

The Evidently report (atr.monitor.report) renders the same metrics with the same
methods; this module computes the numbers without the report's rendering (its t-SNE
plot alone costs seconds a window), so the benchmark and the rule see identical values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from atr.monitor.reference import embedding_matrix, score_outputs
from atr.package.image_stats import STAT_NAMES

SIGNALS = ("embedding", "scores", "decisions", "image_stats")
DECISIONS = ("CLEAR", "REVIEW", "INSPECT")


def _embedding_methods() -> dict[str, type]:
    from evidently.metrics.embeddings import (
        DistanceDriftMethod,
        MMDDriftMethod,
        ModelDriftMethod,
        RatioDriftMethod,
    )

    return {"model": ModelDriftMethod, "mmd": MMDDriftMethod, "distance": DistanceDriftMethod,
            "ratio": RatioDriftMethod}


@dataclass(frozen=True)
class DriftMethods:
    """Which Evidently method computes each signal (conf/monitor/default.yaml: methods)."""

    embedding: str = "model"
    embedding_params: Mapping[str, Any] = field(default_factory=dict)
    column_stattest: str = "wasserstein"  # scores and image statistics
    decision_stattest: str = "jensenshannon"

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> DriftMethods:
        emb = dict(cfg.get("embedding") or {})
        name = str(emb.pop("method", "model"))
        if name not in _embedding_methods():
            raise ValueError(f"monitor.methods.embedding.method={name!r}; "
                             f"known: {sorted(_embedding_methods())}")
        return cls(embedding=name, embedding_params=emb,
                   column_stattest=str(cfg.get("column_stattest", "wasserstein")),
                   decision_stattest=str(cfg.get("decision_stattest", "jensenshannon")))

    def embedding_method(self, threshold: float | None = None) -> Any:
        """The Evidently DriftMethod; `threshold` only sets its own drift flag (the
        report's "drift detected" text), the rule applies its thresholds itself."""
        params = dict(self.embedding_params)
        if threshold is not None:
            params["threshold"] = float(threshold)
        return _embedding_methods()[self.embedding](**params)


def embedding_columns(dims: int) -> list[str]:
    return [f"emb_{i:04d}" for i in range(dims)]


def common_dims(reference: pd.DataFrame, current: pd.DataFrame) -> int:
    """Serving may store only the first dims of a wide embedding (serve.embedding_dims):
    compare the dims both sides have."""
    return min(len(reference["embedding"].iloc[0]), len(current["embedding"].iloc[0]))


def embedding_frame(frame: pd.DataFrame, dims: int) -> pd.DataFrame:
    return pd.DataFrame(embedding_matrix(frame, dims), columns=embedding_columns(dims))


def embedding_drift(reference: pd.DataFrame, current: pd.DataFrame, methods: DriftMethods) -> float:
    dims = common_dims(reference, current)
    method = methods.embedding_method()
    # Fresh frames: the classifier method adds a column to the frames it is given.
    score, _, _ = method(embedding_frame(current, dims), embedding_frame(reference, dims))
    return float(score)


def column_drift(reference: pd.Series, current: pd.Series, stattest: str,
                 categorical: bool = False) -> float:
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Categorical if categorical else ColumnType.Numerical
    test = get_stattest(reference, current, kind, stattest)
    return float(test(reference, current, kind, None).drift_score)


def window_scores(
    reference: pd.DataFrame, current: pd.DataFrame, methods: DriftMethods
) -> dict[str, Any]:
    """{signal: value} for SIGNALS plus `columns`: the per-column values behind the maxima."""
    outputs = score_outputs(reference)
    per_score = {o: column_drift(reference[f"score_{o}"], current[f"score_{o}"],
                                 methods.column_stattest) for o in outputs}
    per_stat = {n: column_drift(reference[n], current[n], methods.column_stattest)
                for n in STAT_NAMES}
    decisions = column_drift(reference["decision"], current["decision"],
                             methods.decision_stattest, categorical=True)
    return {
        "embedding": embedding_drift(reference, current, methods),
        "scores": max(per_score.values()),
        "decisions": decisions,
        "image_stats": max(per_stat.values()),
        "columns": {**{f"score_{o}": v for o, v in per_score.items()}, **per_stat},
        "decision_mix": decision_mix(current),
        "reference_decision_mix": decision_mix(reference),
        "items": len(current),
    }


def decision_mix(frame: pd.DataFrame) -> dict[str, float]:
    counts = frame["decision"].value_counts()
    return {d: float(counts.get(d, 0)) / max(len(frame), 1) for d in DECISIONS}
