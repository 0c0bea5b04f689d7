"""The Evidently report of one window: HTML for people, JSON snapshot for machines.

Sections: embedding drift (EmbeddingsDrift, the method of monitor.methods), score
distributions per model output and image statistics (ValueDrift, normed Wasserstein),
decision mix (ValueDrift, Jensen-Shannon on CLEAR/REVIEW/INSPECT) and, when the window
holds labelled items, performance on them (MeanValue of 1/0 indicator columns: the mean
is the leak rate / threat recall; the reference side gives the val-split rates).

A last section holds the scanner's live leak figures (atr.monitor.leak_rate: audited
CLEARs, leaks, Clopper–Pearson bound, the CUSUM against its threshold), as one-value
metrics whose label carries the counts: they come from the audits, not from the window,
so no Evidently calculation of the datasets could give them.

Written to <reports_dir>/<scanner>/<timestamp>/: report.html, snapshot.json and
summary.json (our drift scores, the rule's decision, the performance counts, the leak
figures).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
from threadpoolctl import threadpool_limits

from atr.monitor.drift_performance import (
    LEAK_COLUMN,
    RECALL_COLUMN,
    indicator_columns,
    low_risk_output,
    threat_outputs,
)
from atr.monitor.drift_scores import DriftMethods, common_dims, embedding_columns, embedding_matrix
from atr.monitor.reference import score_outputs
from atr.package.image_stats import STAT_NAMES

REPORT_HTML, SNAPSHOT_JSON, SUMMARY_JSON = "report.html", "snapshot.json", "summary.json"
EMBEDDING_NAME = "embedding"


def report_frame(frame: pd.DataFrame, outputs: list[str], dims: int) -> pd.DataFrame:
    """Flat columns Evidently reads: scores, stats, decision, emb_*, indicator columns."""
    flat = frame[[f"score_{o}" for o in outputs] + list(STAT_NAMES) + ["decision"]].copy()
    flat = flat.reset_index(drop=True)
    emb = pd.DataFrame(embedding_matrix(frame, dims), columns=embedding_columns(dims))
    ind = indicator_columns(frame.reset_index(drop=True), threat_outputs(outputs),
                            low_risk_output(outputs))
    return pd.concat([flat, emb, ind], axis=1)


def build_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    methods: DriftMethods,
    thresholds: dict[str, float | None] | None = None,
    metadata: dict[str, Any] | None = None,
    leak: Mapping[str, Any] | None = None,
) -> Any:
    """Run the report (current first, then reference: Evidently's order); the snapshot.
    `leak`: the scanner's leak block (atr.monitor.leak_job), shown when it has audits."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift, MeanValue, ValueDrift

    thresholds = thresholds or {}
    outputs = score_outputs(reference)
    dims = common_dims(reference, current)
    ref, cur = report_frame(reference, outputs, dims), report_frame(current, outputs, dims)
    numeric = [f"score_{o}" for o in outputs] + list(STAT_NAMES)
    perf = [c for c in (LEAK_COLUMN, RECALL_COLUMN) if cur[c].notna().any()
            and ref[c].notna().any()]
    definition = DataDefinition(
        numerical_columns=numeric + perf,
        categorical_columns=["decision"],
        embeddings={EMBEDDING_NAME: embedding_columns(dims)},
    )
    keep = numeric + ["decision", *embedding_columns(dims), *perf]
    metrics: list[Any] = [
        EmbeddingsDrift(embeddings_name=EMBEDDING_NAME,
                        drift_method=methods.embedding_method(thresholds.get("embedding"))),
        ValueDrift(column="decision", method=methods.decision_stattest,
                   threshold=thresholds.get("decisions")),
        *[ValueDrift(column=f"score_{o}", method=methods.column_stattest,
                     threshold=thresholds.get("scores")) for o in outputs],
        *[ValueDrift(column=n, method=methods.column_stattest,
                     threshold=thresholds.get("image_stats")) for n in STAT_NAMES],
        *[MeanValue(column=c) for c in perf],
        *leak_section(leak),
    ]
    report = Report(metrics, metadata=_string_metadata(metadata or {}),
                    tags=["atr-monitor"])
    # EmbeddingsDrift draws a t-SNE map; its OpenMP threads spin against each other on a
    # busy host (measured: 45 s for 380 points on 2 loaded cores, 6 s with one thread).
    with threadpool_limits(1):
        return report.run(Dataset.from_pandas(cur[keep], data_definition=definition),
                          Dataset.from_pandas(ref[keep], data_definition=definition))


def report_values(snapshot: Any) -> dict[str, float]:
    """{metric name: value} from a snapshot (MeanValue gives current and reference)."""
    values: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        value = metric["value"]
        if isinstance(value, dict):  # MeanValue on both datasets, or similar
            for key, v in value.items():
                values[f"{metric['metric_name']}.{key}"] = v
        else:
            values[metric["metric_name"]] = value
    return values


@lru_cache(maxsize=1)
def _leak_figure_metric() -> type:
    # Defined on first use: importing Evidently costs seconds the monitor only pays when
    # it writes a report. The value is given, so the calculation reads no dataset.
    from evidently.core.metric_types import SingleValueCalculation, SingleValueMetric

    class LeakFigure(SingleValueMetric):
        """One live leak figure (atr.monitor.leak_rate); `label` names it with its counts."""

        label: str
        figure: float

    class LeakFigureCalculation(SingleValueCalculation[LeakFigure]):
        def calculate(self, context: Any, current_data: Any, reference_data: Any) -> Any:
            return self.result(self.metric.figure), None

        def display_name(self) -> str:
            return self.metric.label

    return LeakFigure


def leak_section(leak: Mapping[str, Any] | None) -> list[Any]:
    """The leak rate (with its bound) and the CUSUM statistic as report metrics."""
    if not leak or not leak.get("audits"):
        return []
    figure = _leak_figure_metric()
    alarm = "ALARM" if leak["alarm"] else "no alarm"
    return [
        figure(label=f"Live leak rate, model v{leak.get('model_version')}: {leak['leaks']} of "
               f"{leak['audits']} audited CLEARs not low risk; {leak['confidence']:.0%} upper "
               f"bound {leak['upper']:.2%} (target {leak['target']:.2%})",
               figure=float(leak["rate"])),
        figure(label=f"Leak CUSUM (log-likelihood ratio, {leak['ratio']:g} x target vs "
               f"target) over {leak['test_audits']} audits since the restart: "
               f"{leak['statistic']:.2f}, threshold {leak['threshold']:.2f}: {alarm}",
               figure=float(leak["statistic"])),
    ]


def save_summary(out_dir: Path, summary: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SUMMARY_JSON
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return path


def save_report(snapshot: Any, out_dir: Path, summary: dict[str, Any]) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"html": out_dir / REPORT_HTML, "snapshot": out_dir / SNAPSHOT_JSON,
             "summary": out_dir / SUMMARY_JSON}
    snapshot.save_html(str(paths["html"]))
    snapshot.save_json(str(paths["snapshot"]))
    save_summary(out_dir, summary)
    return paths


def report_dir(reports_dir: str | Path, scanner_id: str, when: datetime) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", scanner_id) or "unknown"
    return Path(reports_dir) / safe / when.strftime("%Y%m%dT%H%M%S%fZ")


def log_to_mlflow(cfg: Any, scanner_id: str, paths: dict[str, Path],
                  metrics: dict[str, float], tags: dict[str, str]) -> str:
    """One MLflow run per report in experiment `mlflow.experiment` (atr-monitoring); the
    run is named after the report's folder."""
    import mlflow

    from atr.registry.tracking import configure, ensure_experiment

    configure(cfg)
    folder = next(iter(paths.values())).parent.name
    experiment = ensure_experiment(cfg, str(cfg.mlflow.experiment))
    with mlflow.start_run(experiment_id=experiment,
                          run_name=f"monitor-{scanner_id}-{folder}") as run:
        mlflow.set_tags({"scanner_id": scanner_id, **tags})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
        for path in paths.values():
            mlflow.log_artifact(str(path), artifact_path="report")
        return run.info.run_id


def _string_metadata(meta: dict[str, Any]) -> dict[str, str]:
    # Evidently metadata values are strings (or lists / dicts of strings).
    return {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in meta.items()}
