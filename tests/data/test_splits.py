"""Scene-aware splits: every member of a group lands in one split, still stratified."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atr.data.splits import assign_splits, straddling_groups

FRACTIONS = {"train": 0.7, "val": 0.1, "calib": 0.1, "test": 0.1}


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "item_id": [f"src/{i:05d}.png" for i in rng.permutation(n)],
            "paper_only": rng.integers(0, 2, n).astype(np.int8),
            "any_threat": (rng.random(n) < 0.06).astype(np.int8),
        }
    )


def with_scenes(df: pd.DataFrame, seed: int = 1, share: float = 0.4) -> pd.DataFrame:
    """About `share` of the rows put into scenes of 2..6 rows; the rest alone."""
    rng = np.random.default_rng(seed)
    scene = df["item_id"].copy()
    rows = rng.permutation(len(df))[: int(share * len(df))]
    k = 0
    while len(rows):
        size = int(rng.integers(2, 7))
        scene.iloc[rows[:size]] = f"scene-{k}"
        rows, k = rows[size:], k + 1
    return df.assign(scene=scene.to_numpy())


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_lone_items_split_exactly_as_without_groups(seed):
    df = frame(1500, seed)
    plain = assign_splits(df, FRACTIONS, seed)
    # keyed by their own id, or with no key at all: bit-for-bit today's split
    assert assign_splits(df.assign(scene=df["item_id"]), FRACTIONS, seed, groups="scene").equals(
        plain
    )
    assert assign_splits(df.assign(scene=None), FRACTIONS, seed, groups="scene").equals(plain)


def test_scenes_never_straddle_and_stay_stratified():
    df = with_scenes(frame(3000))
    split = assign_splits(df, FRACTIONS, seed=5, groups="scene")
    assert straddling_groups(df["scene"], split) == []
    # without groups the same frame straddles plenty: the test can see a broken split
    assert len(straddling_groups(df["scene"], assign_splits(df, FRACTIONS, seed=5))) > 100
    # A scene counts in the stratum of its most dangerous member.
    scene_stratum = df.groupby("scene").agg(paper_only=("paper_only", "min"),
                                            any_threat=("any_threat", "max"))
    strata = scene_stratum.loc[df["scene"]].set_axis(df.index)
    for _, stratum in strata.assign(split=split).groupby(["paper_only", "any_threat"]):
        counts = stratum["split"].value_counts()
        for name, share in FRACTIONS.items():
            # whole scenes of <= 6 items: each split within a few scenes of its share
            assert abs(counts.get(name, 0) - share * len(stratum)) <= 12, (name, len(stratum))


def test_a_scene_takes_the_stratum_of_its_most_dangerous_member():
    # 20 scenes of one threat item and four paper items, among 400 paper-only items.
    # Counted in the threat stratum (100 items: quotas 70/10/10/10 = 14/2/2/2 scenes),
    # every split gets exactly its share of the threats.
    rows = [{"item_id": f"p/{i:04d}", "paper_only": 1, "any_threat": 0, "scene": None}
            for i in range(400)]
    for k in range(20):
        rows.append({"item_id": f"t/{k:02d}", "paper_only": 0, "any_threat": 1, "scene": f"s{k}"})
        rows += [{"item_id": f"t/{k:02d}-{j}", "paper_only": 1, "any_threat": 0, "scene": f"s{k}"}
                 for j in range(4)]
    df = pd.DataFrame(rows)
    for seed in range(5):
        split = assign_splits(df, FRACTIONS, seed, groups="scene")
        threats = split[df["any_threat"] == 1].value_counts().to_dict()
        assert threats == {"train": 14, "val": 2, "calib": 2, "test": 2}
        assert straddling_groups(df["scene"].fillna(df["item_id"]), split) == []


def test_deterministic_order_free_and_seeded():
    df = with_scenes(frame(1200))
    split = assign_splits(df, FRACTIONS, seed=2, groups="scene")
    assert split.equals(assign_splits(df, FRACTIONS, seed=2, groups="scene"))
    shuffled = df.sample(frac=1.0, random_state=9)
    assert assign_splits(shuffled, FRACTIONS, seed=2, groups="scene").sort_index().equals(split)
    assert not split.equals(assign_splits(df, FRACTIONS, seed=3, groups="scene"))


def test_a_scene_larger_than_any_split_lands_whole_and_the_rest_fills_up():
    df = frame(200, seed=4).assign(paper_only=0, any_threat=0)
    df["scene"] = [("big" if i < 80 else item) for i, item in enumerate(df["item_id"])]
    split = assign_splits(df, FRACTIONS, seed=1, groups="scene")
    assert split[:80].nunique() == 1 and split[0] == "train"  # the split with most room
    # the 120 others share what is left: train's overflow is taken from nobody else
    assert split.value_counts().to_dict() == {"train": 140, "val": 20, "calib": 20, "test": 20}


def test_missing_groups_column_is_refused():
    with pytest.raises(ValueError, match=r"\['scene'\] not in the frame"):
        assign_splits(frame(10), FRACTIONS, seed=0, groups="scene")
