"""`atr prepare`: assemble the training dataset from the base dataset and the labelled
frontline batches (the DVC pipeline's prepare stage).

Frontline batches carry what the scanners see now; `frontline_weight` repeats their
training rows so a few hundred labels are not drowned by thousands of base items, and
`frontline_batches` keeps only the newest N (recency). An item labelled again in a later
batch keeps only its newest row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from atr.data.dataset_writer import DatasetWriter
from atr.data.manifest import read_dataset
from atr.taxonomy import Taxonomy


def frontline_batches(frontline_dir: Path, newest: int) -> list[Path]:
    """Batch folders (names sort by time), newest last; newest=-1 means all, 0 none."""
    if newest == 0 or not frontline_dir.is_dir():
        return []
    batches = sorted(p for p in frontline_dir.iterdir() if (p / "manifest.parquet").is_file())
    return batches if newest < 0 else batches[-newest:]


def _rows(dataset_dir: Path, taxonomy: Taxonomy, origin: str) -> pd.DataFrame:
    ds = read_dataset(dataset_dir, taxonomy)
    df = ds.manifest.copy()
    df["source_file"] = [str(ds.root / p) for p in df.image]
    df["origin"] = origin
    return df


def merge_rows(base: pd.DataFrame, frontline: list[pd.DataFrame]) -> pd.DataFrame:
    """Base then batches in time order; the newest row of a repeated item_id wins."""
    merged = pd.concat([base, *frontline], ignore_index=True)
    return merged.drop_duplicates("item_id", keep="last").reset_index(drop=True)


def run(cfg: DictConfig) -> dict[str, Any]:
    p = cfg.prepare
    base_dir = Path(p.base)
    first = read_dataset(base_dir)
    taxonomy = first.taxonomy
    batches = frontline_batches(Path(p.frontline_dir), int(p.frontline_batches))
    base = _rows(base_dir, taxonomy, "base")
    front = [_rows(b, taxonomy, f"frontline/{b.name}") for b in batches]
    merged = merge_rows(base, front)
    weight = max(1, int(p.frontline_weight))
    info = {"base": str(base_dir), "frontline": [b.name for b in batches], "weight": weight}
    with DatasetWriter(Path(p.out), taxonomy, "prepared", overwrite=True, info=info) as writer:
        for row in merged.itertuples(index=False):
            repeats = weight if row.origin != "base" and row.split == "train" else 1
            data = Path(row.source_file).read_bytes()
            for k in range(repeats):
                writer.add(
                    row.item_id if k == 0 else f"{row.item_id}~w{k}",
                    data,
                    ext=Path(row.source_file).suffix,
                    split=row.split,
                    scanner_id=row.scanner_id,
                    labels={c: int(getattr(row, c)) for c in taxonomy.names},
                    paper_only=int(row.paper_only),
                    boxes=json.loads(row.boxes),
                    meta={**json.loads(row.meta), "origin": row.origin},
                    width=int(row.width),
                    height=int(row.height),
                )
    counts = merged.groupby("origin").size().to_dict()
    return {"dataset": str(p.out), "items": int(len(merged)), "by_origin": counts,
            "frontline_weight": weight}
