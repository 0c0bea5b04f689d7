"""`atr prepare`: base dataset + labelled frontline batches -> one training dataset."""

from __future__ import annotations

from pathlib import Path

from atr.config import compose
from atr.data.manifest import read_dataset
from atr.data.prepare import frontline_batches, run
from atr.data.synth import make_dataset


def test_merges_weights_and_keeps_newest_rows(tmp_path: Path, tiny_dataset: Path) -> None:
    front = tmp_path / "frontline"
    # two batches from the new scanner; the second relabels the same items (same ids)
    make_dataset(front / "2026-11-25T100000-20", count=20, image_size=64, seed=9,
                 scanner="parcel_140kv", splits={"train": 0.5, "calib": 0.5})
    make_dataset(front / "2026-11-25T110000-20", count=20, image_size=64, seed=9,
                 scanner="parcel_140kv", mix="seasonal", splits={"train": 0.5, "calib": 0.5})
    out = tmp_path / "prepared"
    cfg = compose("prepare", [f"prepare.base={tiny_dataset}", f"prepare.frontline_dir={front}",
                              f"prepare.out={out}", "prepare.frontline_weight=3"])
    summary = run(cfg)
    df = read_dataset(out).manifest
    base_n = len(read_dataset(tiny_dataset).manifest)
    # 20 frontline items (second batch replaced the first), train rows x3
    assert summary["items"] == base_n + 20
    assert len(df) == base_n + 20 + 2 * 10
    replicas = df[df.item_id.str.contains("~w")]
    assert len(replicas) == 20 and (replicas.split == "train").all()
    newest = read_dataset(front / "2026-11-25T110000-20").manifest.set_index("item_id")
    firsts = df[df.scanner_id == "parcel_140kv"].drop_duplicates("item_id").set_index("item_id")
    firsts = firsts[~firsts.index.str.contains("~w")]
    assert (firsts.loc[newest.index, "paper_only"] == newest.paper_only).all()
    assert set(firsts.meta.str.extract(r'"origin":"([^"]+)"')[0]) == {
        "frontline/2026-11-25T110000-20"}


def test_recency_selects_newest_batches(tmp_path: Path) -> None:
    for name in ("2026-01-01T000000-5", "2026-02-01T000000-5", "2026-03-01T000000-5"):
        make_dataset(tmp_path / name, count=5, image_size=32)
    assert [p.name for p in frontline_batches(tmp_path, 2)] == [
        "2026-02-01T000000-5", "2026-03-01T000000-5"]
    assert frontline_batches(tmp_path, 0) == []
    assert len(frontline_batches(tmp_path, -1)) == 3
    assert frontline_batches(tmp_path / "missing", -1) == []
