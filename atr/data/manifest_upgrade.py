"""Reading dataset folders written by an older schema version, in memory only.

Why upgrade on read rather than refuse: the folders that matter are DVC-tracked and some
cannot be regenerated (frontline batches of analyst verdicts under `data/frontline/`).
Rewriting them would change their hashes and history; refusing them would strand the
labels. The files keep their bytes; `read_dataset` returns the current schema and marks
`Dataset.info["upgraded_from"]`. Anything written again is written in the current version.

Version 1 -> 2 adds `no_threat` (after `paper_only`) with the only evidence v1 had:
- rows of an importer (`meta["importer"]`; prepare keeps imported rows' meta): v1
  importers recorded no completeness, but wrote `paper_only = 1` only under
  `complete_labels: true`. So no_threat = paper_only, and `meta["complete_labels"]` is set
  to that same evidence (true where paper_only = 1, else false): never a new claim.
- every other row (simulator, frontline verdicts): labels are complete, so
  no_threat = taxonomy.no_threat(classes).
"""

from __future__ import annotations

import json

import pandas as pd

from atr.data.label_completeness import META_KEY
from atr.policy.taxonomy import Taxonomy

UPGRADABLE = (1,)
_V1_TAIL = ("paper_only", "boxes", "meta")
_V1_HEAD = ("image", "raw", "item_id", "split", "scanner_id", "source", "width", "height")


def upgrade_manifest(df: pd.DataFrame, version: int, taxonomy: Taxonomy) -> pd.DataFrame:
    """`df` (read from a version-`version` manifest) in the current schema's columns."""
    if version not in UPGRADABLE:
        raise ValueError(f"no upgrade from schema_version {version!r}")
    expected = [*_V1_HEAD, *taxonomy.names, *_V1_TAIL]
    if list(df.columns) != expected:
        raise ValueError(
            f"schema_version 1 manifest: columns {list(df.columns)} are not the version 1 "
            f"columns {expected}; regenerate the dataset (atr data synth / atr data import)"
        )
    df = df.copy()
    threat_free = ~df[list(taxonomy.threats)].to_numpy().astype(bool).any(axis=1)
    no_threat, metas = [], []
    for i, meta_text in enumerate(df["meta"]):
        try:
            meta = json.loads(meta_text)
        except (TypeError, ValueError):
            meta = None  # left as it is: validation reports the row
        paper_only = int(df["paper_only"].iat[i])
        if isinstance(meta, dict) and "importer" in meta and META_KEY not in meta:
            meta[META_KEY] = bool(paper_only)
            no_threat.append(paper_only)
            metas.append(json.dumps(meta, sort_keys=True, separators=(",", ":")))
            continue
        no_threat.append(int(threat_free[i]))  # = taxonomy.no_threat(classes)
        metas.append(meta_text)
    df["meta"] = metas
    df.insert(df.columns.get_loc("paper_only") + 1, "no_threat", pd.array(no_threat, "int8"))
    return df
