"""Deterministic, stratified train/val/calib/test assignment.

Used when a source gives no split (and by the synthetic writer). Each stratum
(e.g. paper_only x any-threat) is split in the requested proportions, so the
rare positives (SIXray runs ~1:118) reach every split instead of landing all in
train by chance. The order inside a stratum comes from a hash of (seed,
item_id): the same item gets the same split whatever the row order, and adding
items to a source moves few existing ones.

With `groups` (a column of scene keys, atr/data/near_duplicates.py) every member
of a scene lands in the same split: a rescan of a training bag in calib would make
the leak bound a bound on seen images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from atr.data.manifest import SPLITS
from atr.policy.taxonomy import Taxonomy

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
    groups: str | None = None,
) -> pd.Series:
    """Split name per row of `df` (same index). Needs an `item_id` column.

    Within each stratum, counts follow the largest-remainder rule, so a stratum
    of 10 with 0.7/0.1/0.1/0.1 gives exactly 7/1/1/1.

    `groups` names a column of scene keys: rows sharing a key share a split (a
    missing key: the row is its own scene). With only one-row scenes keyed by
    their item_id the result is the same as without `groups`.
    """
    fr = check_fractions(fractions)
    needed = ["item_id", *stratify_cols, *([groups] if groups else [])]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"assign_splits: column(s) {missing} not in the frame")
    if groups is not None:
        return _assign_scenes(df, fr, seed, list(stratify_cols), groups)
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


def _assign_scenes(
    df: pd.DataFrame, fr: dict[str, float], seed: int, stratify_cols: list[str], groups: str
) -> pd.Series:
    keys = df[groups].where(df[groups].notna(), df["item_id"]).astype(str).to_numpy()
    table = pd.DataFrame({"key": keys, **{c: df[c].to_numpy() for c in stratify_cols}})
    # A scene's stratum is its most dangerous member's: any threat > not paper-only >
    # paper-only (min of paper_only, max of every other flag).
    how = {c: (c, "min" if c == "paper_only" else "max") for c in stratify_cols}
    scenes = table.groupby("key", sort=True).agg(size=("key", "size"), **how)
    split_of: dict[str, str] = {}
    strata = scenes.groupby(stratify_cols, sort=True) if stratify_cols else [((), scenes)]
    for _, stratum in strata:
        split_of.update(_place_scenes(stratum["size"].to_dict(), fr, seed))
    return pd.Series([split_of[k] for k in keys], index=df.index, dtype=object)


def _place_scenes(sizes: dict[str, int], fr: dict[str, float], seed: int) -> dict[str, str]:
    """Scenes of one stratum -> split, item counts as close to the fractions as whole
    scenes allow. Many-item scenes go first (largest first), each to a split drawn
    with odds proportional to the room left where it fits (deterministic: a hash of
    seed and key), so no split is favoured; single items then fill what is left in
    rank order, exactly as `assign_splits` without groups does."""
    names = list(fr)
    quota = _largest_remainder(sum(sizes.values()), [fr[s] for s in names])
    placed = [0] * len(names)
    out: dict[str, str] = {}
    multi = sorted((k for k, n in sizes.items() if n > 1),
                   key=lambda k: (-sizes[k], _rank(seed, k)))
    for key in multi:
        room = [q - p for q, p in zip(quota, placed, strict=True)]
        fits = [i for i, r in enumerate(room) if r >= sizes[key]]
        # Fits nowhere: the split with most room takes it, and overflows.
        pick = _draw(seed, key, fits, room) if fits else max(range(len(room)), key=room.__getitem__)
        out[key] = names[pick]
        placed[pick] += sizes[key]
    singles = sorted((k for k, n in sizes.items() if n == 1), key=lambda k: _rank(seed, k))
    room = [max(0, q - p) for q, p in zip(quota, placed, strict=True)]
    if sum(room) != len(singles):  # a scene overflowed: share what is left in proportion
        shares = [r / sum(room) for r in room] if sum(room) else [fr[s] for s in names]
        room = _largest_remainder(len(singles), shares)
    out.update(zip(singles, np.repeat(names, room).tolist(), strict=True))
    return out


def _draw(seed: int, key: str, candidates: list[int], room: list[int]) -> int:
    u = int.from_bytes(_rank(seed, f"{key}\x00split"), "big") / 2.0**64
    total = sum(room[i] for i in candidates)
    acc = 0.0
    for i in candidates:
        acc += room[i] / total
        if u < acc:
            return i
    return candidates[-1]


def straddling_groups(keys: Sequence[str], splits: Sequence[str]) -> list[str]:
    """Scene keys whose members sit in more than one split (sorted)."""
    seen: dict[str, set[str]] = {}
    for key, split in zip(keys, splits, strict=True):
        seen.setdefault(str(key), set()).add(str(split))
    return sorted(k for k, v in seen.items() if len(v) > 1)


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
