"""The drift reference: the champion package's `reference.parquet` as a monitor frame.

The evaluate stage writes reference.parquet from the package's val split (scores,
embedding, image statistics, decision and truth per item: atr.evaluation.calibrate).
The monitor compares every window of the line's predictions with it, so both sides
must have the same columns: `monitor_frame` is that one shape (see MONITOR_COLUMNS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atr.package.image_stats import STAT_NAMES
from atr.package.layout import REFERENCE_FILE

SCORE_PREFIX = "score_"
# Columns of a monitor frame besides score_<output>, the embedding and the truth columns.
MONITOR_COLUMNS = ("item_id", "scanner_id", "created_at", "model_version", "decision", "reason",
                   *STAT_NAMES)


@dataclass(frozen=True)
class Reference:
    frame: pd.DataFrame
    path: Path
    model_version: str | None  # the registry version it came from; None for a local file

    @property
    def outputs(self) -> list[str]:
        return score_outputs(self.frame)


def score_outputs(frame: pd.DataFrame) -> list[str]:
    """Model outputs in column order, read back from the score_<output> columns."""
    return [c.removeprefix(SCORE_PREFIX) for c in frame.columns if c.startswith(SCORE_PREFIX)]


def embedding_matrix(frame: pd.DataFrame, dims: int | None = None) -> np.ndarray:
    """N x D float32 from the `embedding` column (first `dims` columns when given)."""
    if frame.empty:
        return np.zeros((0, dims or 0), np.float32)
    matrix = np.stack([np.asarray(e, np.float32) for e in frame["embedding"]])
    return matrix[:, :dims] if dims else matrix


def monitor_frame(frame: pd.DataFrame, outputs: list[str] | None = None) -> pd.DataFrame:
    """Select and type the monitor columns; missing metadata columns become null.

    Truth columns (`paper_only` and one per threat output) are floats, NaN = not labelled.
    """
    outputs = outputs or score_outputs(frame)
    missing = [c for c in ("decision", "embedding", *STAT_NAMES) if c not in frame.columns]
    missing += [f"{SCORE_PREFIX}{o}" for o in outputs if f"{SCORE_PREFIX}{o}" not in frame]
    if missing:
        raise ValueError(f"monitor frame lacks column(s) {missing}")
    out = pd.DataFrame(index=frame.index)
    for column in MONITOR_COLUMNS:
        out[column] = frame[column] if column in frame.columns else None
    for o in outputs:
        out[f"{SCORE_PREFIX}{o}"] = frame[f"{SCORE_PREFIX}{o}"].astype(np.float64)
        out[o] = frame[o].astype(np.float64) if o in frame.columns else np.nan
    for name in STAT_NAMES:
        out[name] = frame[name].astype(np.float64)
    out["decision"] = frame["decision"].astype(str)
    out["embedding"] = [np.asarray(e, np.float32) for e in frame["embedding"]]
    return out.reset_index(drop=True)


def read_reference(path: str | Path, model_version: str | None = None) -> Reference:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"drift reference {path} not found (written by `atr evaluate`)")
    frame = pd.read_parquet(path)
    return Reference(monitor_frame(frame), path, model_version)


def load_reference(cfg: Any) -> Reference:
    """monitor.reference_path when set, else reference.parquet of the registered version
    `monitor.reference_alias` of `registry.model_name` (downloaded, checksums verified)."""
    mon = cfg.monitor
    if mon.get("reference_path"):
        return read_reference(mon.reference_path)
    from atr.package.fetch import fetch_package
    from atr.registry.tracking import configure, model_name

    name, alias = model_name(cfg), str(mon.reference_alias)
    try:
        # A version's files never change: each run reuses the copy an earlier one
        # downloaded, but only after re-verifying it (a tampered cache is fetched again).
        fetched = fetch_package(configure(cfg), name, alias, mon.download_dir, reuse=True)
    except LookupError as exc:
        raise ValueError(f"no version of model {name!r} has alias {alias!r}: approve one "
                         "(atr approve) or set monitor.reference_path") from exc
    return read_reference(fetched.path / REFERENCE_FILE, str(fetched.version.version))
