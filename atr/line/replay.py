"""Replay a dataset folder on the line: real scans instead of simulated parcels.

A replay phase (`{dataset: DIR, split: test, count: 500, scanner_id: hums-1}`) sends the
split's items in a seeded order, cycling when `count` exceeds the split (a new shuffle
per cycle, so repeats do not come back in the same sequence); count 0 sends the split
once. Each item sends the manifest column the served model reads (its preprocess
`input_column`, from GET /v1/model): `raw` (the dual-energy pair) or `image`, the
file's own bytes. The truth is the manifest's: its class columns, `paper_only` and
`no_threat` (1 = positive evidence, 0 = not known to be), and the classes the row's
source labels completely (`meta.complete_labels`); the line's feedback sends only those.

A dataset lacking the column the model reads (e.g. pseudo-colour images only, for a
dual-energy model) is refused before anything is sent, naming the dataset, split, the
first such item and how to get the column; so is an empty split. Files are read once
each (a cycled item is the same bytes) and held in memory for the run, like the
simulated parcels.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from atr.data.label_completeness import row_completeness
from atr.data.manifest import Dataset, read_dataset
from atr.line.parcels import Parcel
from atr.line.plan import Phase
from atr.policy.taxonomy import Taxonomy

CONTENT_TYPES = {".png": "image/png", ".tif": "image/tiff", ".tiff": "image/tiff",
                 ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".bmp": "image/bmp",
                 ".webp": "image/webp"}
_HOW = {"raw": "import the scanner's energy pairs with importer=dual_energy, or simulate "
               "with synth.save_raw=true",
        "image": "every manifest row has an image; this should not happen"}


def _rows(dataset: Dataset, phase: Phase) -> list[dict]:
    frame = dataset.manifest if phase.split == "all" else dataset.split(phase.split)
    return frame.to_dict("records")


def check_columns(phase: Phase, rows: list[dict], column: str, model: str) -> None:
    """Refuse a replay whose rows lack what the model reads, before any request."""
    where = f"line.phases[{phase.index}] ({phase.dataset}, split {phase.split})"
    if not rows:
        raise ValueError(f"{where}: no items in that split")
    missing = [r["item_id"] for r in rows if not r.get(column)]
    if missing:
        raise ValueError(
            f"{where}: {len(missing)} of {len(rows)} items have no {column!r} file (first: "
            f"{missing[0]!r}); the served model ({model}) reads {column!r}: {_HOW[column]}")


def replay_order(n_rows: int, count: int, seed: int, offset: int = 0) -> list[int]:
    """Row indices of sends offset .. offset+count-1 of the endless order: a seeded shuffle
    of the rows, a fresh one per cycle (the same seed gives the same order in any phase,
    so chunks with growing offsets continue one replay)."""
    out: list[int] = []
    cycle = 0
    while len(out) < offset + count:
        rng = np.random.default_rng([seed, cycle])
        out.extend(int(i) for i in rng.permutation(n_rows))
        cycle += 1
    return out[offset:offset + count]


def resolve_counts(phases: list[Phase]) -> list[Phase]:
    """Replay phases with count 0 get their split's size (the split sent once)."""
    out = []
    for ph in phases:
        if ph.replay and ph.count == 0:
            ph = replace(ph, count=len(_rows(read_dataset(str(ph.dataset)), ph)))
        out.append(ph)
    return out


def _parcel(row: dict, root: Path, column: str, item_id: str, phase: Phase,
            taxonomy: Taxonomy, cache: dict[Path, bytes]) -> Parcel:
    path = root / str(row[column])
    if path not in cache:
        cache[path] = path.read_bytes()
    meta = json.loads(row["meta"] or "{}")
    complete = row_completeness(meta).classes(taxonomy)
    labels = {c: int(row[c]) for c in taxonomy.names}
    known = frozenset(complete | {c for c, v in labels.items() if v})
    return Parcel(item_id, phase.scanner_id or str(row["scanner_id"]), phase.index,
                  cache[path], labels, int(row["paper_only"]), no_threat=int(row["no_threat"]),
                  known=known, content_type=CONTENT_TYPES.get(path.suffix.lower(),
                                                              "application/octet-stream"),
                  source_item=str(row["item_id"]))


def replay_parcels(phase: Phase, ids: list[str], taxonomy: Taxonomy, column: str,
                   seed: int, model: str = "the served model") -> list[Parcel]:
    """The phase's parcels (one per id, in line order) from its dataset folder."""
    dataset = read_dataset(str(phase.dataset), taxonomy)  # refuses other classes
    rows = _rows(dataset, phase)
    check_columns(phase, rows, column, model)
    cache: dict[Path, bytes] = {}
    order = replay_order(len(rows), len(ids), seed, phase.offset)
    return [_parcel(rows[k], dataset.root, column, item_id, phase, taxonomy, cache)
            for item_id, k in zip(ids, order, strict=True)]
