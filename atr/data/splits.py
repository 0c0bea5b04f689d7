"""Deterministic, stratified train/val/calib/test assignment.

Used when a source gives no split (and by the synthetic writer). Each stratum
(e.g. paper_only x any-threat) is split in the requested proportions, so the
rare positives (SIXray runs ~1:118) reach every split instead of landing all in
train by chance. The order inside a stratum comes from a hash of (seed,
item_id): the same item gets the same split whatever the row order, and adding
items to a source moves few existing ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from atr.data.manifest import SPLITS
from atr.taxonomy import Taxonomy

DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.1, "calib": 0.1, "test": 0.1}


def check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    fr = {str(k): float(v) for k, v in fractions.items()}
    unknown = sorted(set(fr) - set(SPLITS))
    if unknown:
        raise ValueError(f"split fractions: unknown split(s) {unknown}, expected some of {SPLITS}")
    if any(v < 0 for v in fr.values()) or abs(sum(fr.values()) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fr}")
    return {s: fr[s] for s in SPLITS if fr.get(s, 0.0) > 0}


def with_strata(df: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """`df` plus an `any_threat` column (0/1), for stratifying on paper_only x any-threat."""
    threats = [t for t in taxonomy.threats if t in df.columns]
    any_threat = df[threats].to_numpy().any(axis=1) if threats else np.zeros(len(df), bool)
    return df.assign(any_threat=any_threat.astype(np.int8))


def assign_splits(
    df: pd.DataFrame,
    fractions: Mapping[str, float],
    seed: int,
    stratify_cols: Sequence[str] = ("paper_only", "any_threat"),
) -> pd.Series:
    """Split name per row of `df` (same index). Needs an `item_id` column.

    Within each stratum, counts follow the largest-remainder rule, so a stratum
    of 10 with 0.7/0.1/0.1/0.1 gives exactly 7/1/1/1.
    """
    fr = check_fractions(fractions)
    missing = [c for c in ["item_id", *stratify_cols] if c not in df.columns]
    if missing:
        raise ValueError(f"assign_splits: column(s) {missing} not in the frame")
    names = list(fr)
    out = pd.Series(index=df.index, dtype=object)
    keys = [c for c in stratify_cols]
    groups = df.groupby(keys, sort=True).indices.values() if keys else [np.arange(len(df))]
    for positions in groups:
        ids = df["item_id"].to_numpy()[positions]
        order = sorted(range(len(ids)), key=lambda k: _rank(seed, str(ids[k])))
        counts = _largest_remainder(len(ids), [fr[s] for s in names])
        labels = np.repeat(names, counts)
        out.iloc[np.asarray(positions)[order]] = labels
    return out


def _rank(seed: int, item_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{item_id}".encode(), digest_size=8).digest()


def _largest_remainder(n: int, fractions: list[float]) -> list[int]:
    exact = [n * f for f in fractions]
    counts = [int(e) for e in exact]
    # Ties go to the earlier split (train first), keeping the result deterministic.
    by_remainder = sorted(range(len(exact)), key=lambda k: (-(exact[k] - counts[k]), k))
    for k in by_remainder[: n - sum(counts)]:
        counts[k] += 1
    return counts
