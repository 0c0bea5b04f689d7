"""`atr prepare`: assemble the training dataset from the sources of pipelines/params.yaml
(`dataset.sources`: simulator renderings and imported archives, atr/data/sources.py) and
the labelled frontline batches (the DVC pipeline's prepare stage).

Every source keeps its own splits. A source's train rows are repeated `weight` times;
frontline batches carry what the scanners see now, so `frontline_weight` repeats their
train rows so a few hundred labels are not drowned by thousands of base items, and
`frontline_batches` keeps only the newest N (recency). An item labelled again in a later
frontline batch keeps only its newest row; the same item id in two sources is refused
(two sources claiming one parcel is a params mistake, not a relabel).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from atr.data.dataset_writer import DatasetWriter
from atr.data.manifest import ManifestError, read_dataset
from atr.data.manifest_checks import SPLITS
from atr.data.sources import INDEX_FILE, Source, SourceError, load_sources
from atr.policy.taxonomy import Taxonomy


def frontline_batches(frontline_dir: Path, newest: int) -> list[Path]:
    """Batch folders (names sort by time), newest last; newest=-1 means all, 0 none."""
    if newest == 0 or not frontline_dir.is_dir():
        return []
    batches = sorted(p for p in frontline_dir.iterdir() if (p / "manifest.parquet").is_file())
    return batches if newest < 0 else batches[-newest:]


def _rows(dataset_dir: Path, taxonomy: Taxonomy, origin: str, weight: int,
          where: str) -> pd.DataFrame:
    try:
        ds = read_dataset(dataset_dir)
    except ManifestError as e:
        raise SourceError(f"{where}: {dataset_dir} is not a usable ATR dataset:\n{e}") from None
    _check_taxonomy(ds.taxonomy, taxonomy, where, dataset_dir)
    df = ds.manifest.copy()
    df["source_file"] = [str(ds.root / p) for p in df.image]
    # the dual-energy pair travels too: the dual_energy representation trains on it
    df["raw_file"] = [str(ds.root / r) if isinstance(r, str) else None for r in df.raw]
    df["origin"] = origin
    df["weight"] = weight
    return df


def _check_taxonomy(stored: Taxonomy, taxonomy: Taxonomy, where: str, root: Path) -> None:
    """Same classes in the same groups: a source labelled under another taxonomy would
    teach the model other truths under the same column names. (The low-risk definition
    may differ: every manifest carries both truths, and the model picks its own.)"""
    def classes(t: Taxonomy) -> list[str]:
        return [f"{c.name}:{c.group}" for c in t.classes]

    if classes(stored) != classes(taxonomy):
        raise SourceError(
            f"{where}: {root / 'dataset.json'} taxonomy {classes(stored)} differs from the "
            f"pipeline's {taxonomy.name!r} {classes(taxonomy)} (conf/taxonomy); re-import "
            "the source under it")


def source_dir(source: Source, simulated_dir: Path, data_dir: Path) -> Path:
    """Where a source's dataset folder is; import paths must lie under data/, the folder
    the prepare stage depends on (so `dvc add data` + `dvc repro` re-runs it)."""
    if source.kind == "simulator":
        root = simulated_dir / source.name
        index = simulated_dir / INDEX_FILE
        recipes = json.loads(index.read_text())["sources"] if index.is_file() else {}
        if recipes.get(source.name) != source.recipe:
            raise SourceError(f"{source.where}: {root} was not rendered from this recipe "
                              "(run the synthesize stage: cd pipelines && dvc repro)")
        return root
    assert source.path is not None
    root = source.path.expanduser().resolve()
    if not root.is_relative_to(data_dir.resolve()):
        raise SourceError(f"{source.where}: path {str(source.path)!r} is outside {data_dir} "
                          "(the DVC-tracked folder the prepare stage depends on)")
    if not (root / "manifest.parquet").is_file():
        raise SourceError(f"{source.where}: no dataset at {source.path} (expected "
                          "manifest.parquet there: `atr data import ... importer.out=...`?)")
    return root


def _raw(path: str | None) -> np.ndarray | None:
    """The stored 16-bit pair as the writer takes it (it re-encodes it losslessly)."""
    if not isinstance(path, str):  # None, or NaN after a concat
        return None
    with Image.open(path) as img:
        return np.asarray(img, dtype=np.uint16)


def merge_rows(sources: pd.DataFrame, frontline: list[pd.DataFrame]) -> pd.DataFrame:
    """Sources then batches in time order; the newest row of a repeated item_id wins."""
    merged = pd.concat([sources, *frontline], ignore_index=True)
    return merged.drop_duplicates("item_id", keep="last").reset_index(drop=True)


def _refuse_shared_ids(frames: list[pd.DataFrame], sources: list[Source]) -> None:
    owner: dict[str, str] = {}
    for df, s in zip(frames, sources, strict=True):
        clash = df.item_id[df.item_id.isin(owner)]
        if len(clash):
            first = clash.iloc[0]
            raise SourceError(f"{s.where}: item_id {first!r} ({len(clash)} in all) is also in "
                              f"{owner[first]}: give the sources different seeds or names")
        owner.update(dict.fromkeys(df.item_id, s.where))


def _counts(rows: pd.DataFrame, weight: int) -> dict[str, Any]:
    """Items per split (after frontline relabels) and the rows written for them."""
    splits = {s: int((rows.split == s).sum()) for s in SPLITS}
    return {"items": int(len(rows)), "splits": splits,
            "rows": int(len(rows)) + splits["train"] * (weight - 1)}


def assemble(cfg: DictConfig) -> tuple[pd.DataFrame, Taxonomy, dict[str, Any]]:
    """Every source's and batch's rows (checked), and the per-origin counts."""
    p = cfg.prepare
    taxonomy = Taxonomy.from_dict(OmegaConf.to_container(cfg.taxonomy, resolve=True))
    sources = load_sources(Path(p.sources_file))
    simulated, data_dir = Path(p.simulated_dir), Path(cfg.paths.data_dir)
    frames = [_rows(source_dir(s, simulated, data_dir), taxonomy, s.name, s.weight, s.where)
              for s in sources]
    _refuse_shared_ids(frames, sources)
    batches = frontline_batches(Path(p.frontline_dir), int(p.frontline_batches))
    weight = max(1, int(p.frontline_weight))
    front = [_rows(b, taxonomy, f"frontline/{b.name}", weight, f"frontline batch {b}")
             for b in batches]
    merged = merge_rows(pd.concat(frames, ignore_index=True), front)
    per_source = [{**s.describe(), **_counts(merged[merged.origin == s.name], s.weight)}
                  for s in sources]
    is_front = merged.origin.str.startswith("frontline/")
    info = {
        "sources": per_source,
        "frontline": {"batches": [b.name for b in batches], "weight": weight,
                      **_counts(merged[is_front], weight)},
    }
    if not ((merged.split == "train") & (merged.weight > 0)).any():
        raise SourceError(f"{p.sources_file}: dataset.sources give no training rows "
                          "(every source has weight 0 or no train split)")
    return merged, taxonomy, info


def run(cfg: DictConfig) -> dict[str, Any]:
    merged, taxonomy, info = assemble(cfg)
    out = Path(cfg.prepare.out)
    rows = 0
    with DatasetWriter(out, taxonomy, "prepared", overwrite=True, info=info) as writer:
        for row in merged.itertuples(index=False):
            repeats = int(row.weight) if row.split == "train" else 1
            if not repeats:
                continue
            data = Path(row.source_file).read_bytes()
            raw = _raw(row.raw_file)
            for k in range(repeats):
                writer.add(
                    row.item_id if k == 0 else f"{row.item_id}~w{k}",
                    data,
                    ext=Path(row.source_file).suffix,
                    raw=raw,
                    split=row.split,
                    scanner_id=row.scanner_id,
                    labels={c: int(getattr(row, c)) for c in taxonomy.names},
                    paper_only=int(row.paper_only),
                    no_threat=int(row.no_threat),
                    boxes=json.loads(row.boxes),
                    meta={**json.loads(row.meta), "origin": row.origin},
                    width=int(row.width),
                    height=int(row.height),
                )
            rows += repeats
    by_origin = {str(k): int(v) for k, v in merged.groupby("origin", sort=False).size().items()}
    # items: distinct items merged (a weight-0 source's train items are counted, not written)
    return {"dataset": str(out), "items": int(len(merged)), "rows": rows,
            "by_origin": by_origin, "sources": info["sources"], "frontline": info["frontline"],
            "frontline_weight": info["frontline"]["weight"]}
