"""Score a model package on a dataset's split(s): one DataFrame row per image.

The frame is what calibration, the evaluation report and the drift reference
(`reference.parquet`) are built from, so its column names are a contract:
truth columns keep the manifest's names (the low-risk columns `paper_only` and
`no_threat` the manifest has, one per class; the model's first output, outputs[0], names
the one its policy is calibrated and judged on), model
scores are `score_<output>`, the embedding is one `embedding` column of float32
arrays, image statistics keep the names of `atr.package.image_stats.STAT_NAMES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atr.package.image_stats import STAT_NAMES
from atr.package.onnx_scorer import OnnxScorer
from atr.policy.taxonomy import LOW_RISK_DEFINITIONS

SCORE_PREFIX = "score_"
ID_COLUMNS = ("item_id", "split", "scanner_id", "source", "image")


def score_column(output: str) -> str:
    return f"{SCORE_PREFIX}{output}"


def score_matrix(frame: pd.DataFrame, outputs: Sequence[str]) -> np.ndarray:
    """N x K scores in `outputs` order, back out of a scored frame."""
    return frame[[score_column(o) for o in outputs]].to_numpy(dtype=np.float64)


def load_dataset(dataset_dir: str | Path) -> Any:
    """The dataset through the manifest module (schema checked on read)."""
    from atr.data.manifest import read_dataset

    return read_dataset(Path(dataset_dir))


def score_dataset(
    scorer: OnnxScorer,
    dataset: Any,
    splits: Sequence[str] | None = None,
    batch_size: int = 32,
) -> pd.DataFrame:
    """Score the rows of `dataset` in `splits` (all rows when None), in manifest order.

    Refuses a dataset that lacks a truth column the package's outputs need: an
    evaluation that silently skipped a threat class would overstate safety.
    """
    manifest: pd.DataFrame = dataset.manifest
    rows = manifest if splits is None else manifest[manifest["split"].isin(list(splits))]
    if rows.empty:
        present = sorted(manifest["split"].unique().tolist())
        raise ValueError(
            f"dataset {dataset.root}: no rows in split(s) {list(splits or [])} "
            f"(the manifest has {present})"
        )
    truth = [c for c in scorer.outputs if c not in rows.columns]
    if truth:
        raise ValueError(
            f"dataset {dataset.root}: manifest lacks truth column(s) {truth} that model "
            f"package {scorer.package_dir} predicts (outputs {scorer.outputs})"
        )
    root = Path(dataset.root)
    column = scorer.preprocess.input_column  # "raw" for a dual-energy model
    if rows[column].isna().any():
        first = rows.loc[rows[column].isna(), "item_id"].iloc[0]
        raise ValueError(
            f"dataset {dataset.root}: {int(rows[column].isna().sum())} item(s) have no "
            f"{column!r} file (first: {first}), which model package {scorer.package_dir} "
            f"reads ({scorer.preprocess.representation} input)"
        )
    paths = [root / p for p in rows[column]]
    scores, emb, stats = scorer.score_paths_with_stats(paths, batch_size=batch_size)

    class_columns = [c for c in dataset.taxonomy.names if c in rows.columns]
    low_risk = [c for c in LOW_RISK_DEFINITIONS if c in rows.columns]
    keep = [c for c in ID_COLUMNS if c in rows.columns] + [*low_risk, *class_columns]
    frame = rows[list(dict.fromkeys(keep))].reset_index(drop=True).copy()
    for j, output in enumerate(scorer.outputs):
        frame[score_column(output)] = scores[:, j].astype(np.float32)
    frame["embedding"] = list(emb.astype(np.float32))
    stats_frame = pd.DataFrame(stats, columns=list(STAT_NAMES))
    for name in STAT_NAMES:
        frame[name] = stats_frame[name].to_numpy(dtype=np.float32)
    return frame


def add_decisions(frame: pd.DataFrame, policy: Any, outputs: Sequence[str]) -> pd.DataFrame:
    """Columns `decision` and `reason` from the package's policy (a copy of frame), with
    the per-scanner clear thresholds of a recalibrated policy where the frame has scanners."""
    scanners = frame["scanner_id"].astype(str).tolist() if "scanner_id" in frame else None
    decisions, reasons = policy.decide(score_matrix(frame, outputs), scanners)
    out = frame.copy()
    out["decision"] = [str(d) for d in decisions]
    out["reason"] = reasons
    return out
