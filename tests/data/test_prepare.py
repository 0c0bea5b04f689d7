"""`atr prepare`: the sources of params `dataset.sources` + labelled frontline batches ->
one training dataset; and the synthesize stage's rendering of simulator sources."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from atr.config import compose
from atr.data.dataset_writer import DatasetWriter
from atr.data.manifest import read_dataset
from atr.data.prepare import frontline_batches, run
from atr.data.sources import SourceError, load_sources, main, parse_sources, synthesize_sources
from atr.data.synth import make_dataset
from atr.policy.taxonomy import Taxonomy, default_taxonomy

SPLITS = {"train": 0.5, "val": 0.1, "calib": 0.3, "test": 0.1}
RECIPE = {"count": 40, "image_size": 48, "seed": 5, "scanner": "parcel_160kv",
          "mix": "default", "splits": SPLITS}


def sim(name: str = "synthetic", weight: int = 1, **recipe: Any) -> dict[str, Any]:
    return {"name": name, "kind": "simulator", "weight": weight, **RECIPE, **recipe}


def imp(path: Path, name: str = "archive", weight: int = 1) -> dict[str, Any]:
    return {"name": name, "kind": "import", "weight": weight, "path": str(path)}


def prepare(tmp_path: Path, sources: list[dict], data_dir: Path, *extra: str,
            render: bool = True) -> dict[str, Any]:
    """Write params, render its simulator sources (the synthesize stage), run prepare."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"dataset": {"sources": sources}}))
    if render:
        synthesize_sources(load_sources(params), tmp_path / "sources")
    return run(compose("prepare", [
        f"prepare.sources_file={params}", f"prepare.simulated_dir={tmp_path / 'sources'}",
        f"paths.data_dir={data_dir}", f"prepare.frontline_dir={data_dir / 'frontline'}",
        f"prepare.out={tmp_path / 'prepared'}", *extra]))


@pytest.fixture
def archive(tmp_path: Path, tiny_dataset: Path) -> Path:
    """The tiny dataset as an imported archive under tmp_path/data (the DVC-tracked folder)."""
    return Path(shutil.copytree(tiny_dataset, tmp_path / "data" / "imports" / "archive"))


def test_merges_weights_and_keeps_newest_rows(tmp_path: Path, archive: Path) -> None:
    front = tmp_path / "data" / "frontline"
    # two batches from the new scanner; the second relabels the same items (same ids)
    make_dataset(front / "2026-11-25T100000-20", count=20, image_size=64, seed=9,
                 scanner="parcel_140kv", splits={"train": 0.5, "calib": 0.5})
    make_dataset(front / "2026-11-25T110000-20", count=20, image_size=64, seed=9,
                 scanner="parcel_140kv", mix="seasonal", splits={"train": 0.5, "calib": 0.5})
    summary = prepare(tmp_path, [imp(archive)], tmp_path / "data", "prepare.frontline_weight=3")
    out = tmp_path / "prepared"
    df = read_dataset(out).manifest
    base_n = len(read_dataset(archive).manifest)
    # 20 frontline items (second batch replaced the first), train rows x3
    assert summary["items"] == base_n + 20
    assert len(df) == summary["rows"] == base_n + 20 + 2 * 10
    replicas = df[df.item_id.str.contains("~w")]
    assert len(replicas) == 20 and (replicas.split == "train").all()
    newest = read_dataset(front / "2026-11-25T110000-20").manifest.set_index("item_id")
    firsts = df[df.scanner_id == "parcel_140kv"].drop_duplicates("item_id").set_index("item_id")
    firsts = firsts[~firsts.index.str.contains("~w")]
    assert (firsts.loc[newest.index, "paper_only"] == newest.paper_only).all()
    assert set(firsts.meta.str.extract(r'"origin":"([^"]+)"')[0]) == {
        "frontline/2026-11-25T110000-20"}
    assert summary["by_origin"] == {"archive": base_n, "frontline/2026-11-25T110000-20": 20}
    info = json.loads((out / "dataset.json").read_text())["frontline"]
    assert info["batches"] == ["2026-11-25T100000-20", "2026-11-25T110000-20"]
    assert (info["items"], info["rows"], info["weight"]) == (20, 40, 3)


def test_one_simulator_source_is_the_simulator_dataset(tmp_path: Path) -> None:
    """The default pipeline (one simulator source) trains on exactly what `atr data synth`
    renders from the recipe: same items, splits, labels and image bytes."""
    summary = prepare(tmp_path, [sim()], tmp_path / "data")
    direct = make_dataset(tmp_path / "direct", **{k: RECIPE[k] for k in RECIPE}, workers=1)
    a, b = read_dataset(direct).manifest, read_dataset(tmp_path / "prepared").manifest
    same = ["image", "item_id", "split", "scanner_id", "width", "height", "paper_only",
            "no_threat", "boxes", *read_dataset(direct).taxonomy.names]
    assert a[same].equals(b[same])
    assert all((direct / p).read_bytes() == (tmp_path / "prepared" / p).read_bytes()
               for p in a.image)
    metas = [json.loads(m) for m in b.meta]
    assert {m.pop("origin") for m in metas} == {"synthetic"}
    assert metas == [json.loads(m) for m in a.meta]
    assert summary["sources"][0]["splits"] == {"train": 20, "val": 4, "calib": 12, "test": 4}
    index = json.loads((tmp_path / "sources" / "index.json").read_text())
    assert index["sources"]["synthetic"]["seed"] == 5


def test_sources_keep_splits_weights_repeat_train_rows(tmp_path: Path, archive: Path) -> None:
    summary = prepare(tmp_path, [sim(weight=2), imp(archive, weight=0)], tmp_path / "data")
    out = tmp_path / "prepared"
    df = read_dataset(out).manifest
    origin = df.meta.map(lambda m: json.loads(m)["origin"])
    archive_dir, archive = archive, read_dataset(archive).manifest
    # weight 0: the archive's train items are left out, its held-out items kept, same split
    kept = df[origin == "archive"].set_index("item_id")
    held = archive[archive.split != "train"].set_index("item_id")
    assert set(kept.index) == set(held.index)
    assert (kept.loc[held.index, "split"] == held.split).all()
    # weight 2: every simulated train item twice, held-out items once
    simulated = df[origin == "synthetic"]
    assert (simulated.split == "train").sum() == 2 * 20 and len(simulated) == 20 * 2 + 20
    assert simulated.item_id.str.endswith("~w1").sum() == 20
    # the dual-energy pair travels with the archive's items, pixel for pixel
    row = kept.iloc[0]
    source_raw = archive.set_index("item_id").loc[kept.index[0], "raw"]
    assert np.array_equal(np.asarray(Image.open(out / row.raw)),
                          np.asarray(Image.open(archive_dir / source_raw)))
    info = json.loads((out / "dataset.json").read_text())["sources"]
    assert [(s["name"], s["kind"], s["weight"], s["items"], s["rows"]) for s in info] == [
        ("synthetic", "simulator", 2, 40, 60),
        ("archive", "import", 0, len(archive), len(held))]
    assert info[1]["path"] == str(archive_dir) and info[1]["splits"]["train"] == (
        archive.split == "train").sum()
    assert summary["sources"] == info and summary["rows"] == len(df)


def _retaxonomised(dst: Path) -> Path:
    """A valid dataset labelled under another taxonomy: tools screened as threats."""
    spec = default_taxonomy().to_dict()
    for c in spec["classes"]:
        if c["name"] == "tool":
            c["group"] = "threat"
    taxonomy = Taxonomy.from_dict(spec)
    with DatasetWriter(dst, taxonomy, "folder:office") as w:
        for i, split in enumerate(["train", "val", "calib", "test"]):
            w.add(f"office/{i}.png", np.full((8, 8, 3), 200, np.uint8), split=split,
                  scanner_id="x", labels={"tool": i % 2, "document": 1})
    return dst


@pytest.mark.parametrize("case", ["missing", "outside", "taxonomy", "shared_ids", "stale",
                                  "no_train"])
def test_refuses_unusable_sources_naming_the_entry(tmp_path: Path, tiny_dataset: Path,
                                                   archive: Path, case: str) -> None:
    data, copy = tmp_path / "data", archive
    sources, expect, render = {
        "missing": ([sim(), imp(data / "imports" / "nope", "hums")],
                    r"dataset.sources\[1\] \('hums'\): no dataset at", True),
        "outside": ([imp(tiny_dataset, "hums")], r"\('hums'\): path .* is outside", True),
        "taxonomy": ([imp(copy), imp(_retaxonomised(data / "t"), "office")],
                     r"\[1\] \('office'\): .*dataset.json taxonomy .*tool:threat", True),
        "shared_ids": ([imp(copy, "a"), imp(copy, "b")],
                       r"\[1\] \('b'\): item_id .* is also in .*\[0\] \('a'\)", True),
        "stale": ([sim()], r"\[0\] \('synthetic'\): .* not rendered from this recipe", False),
        "no_train": ([imp(copy, weight=0)], r"give no training rows", True),
    }[case]
    if case == "stale":  # rendered from seed 5, params now say seed 6
        prepare(tmp_path, sources, data)
        sources = [sim(seed=6)]
    with pytest.raises(SourceError, match=expect):
        prepare(tmp_path, sources, data, render=render)
    if case != "stale":
        assert not (tmp_path / "prepared").exists()  # nothing partial written


@pytest.mark.parametrize(("entry", "expect"), [
    ({"name": "x", "kind": "simulator", "weight": 0.5, **RECIPE}, r"weight 0.5 must be a whole"),
    ({"name": "x", "kind": "sim", "weight": 1}, r"kind 'sim' not one of"),
    ({"name": "x", "kind": "simulator", "weight": 1, **{k: v for k, v in RECIPE.items()
                                                      if k != "seed"}},
     r"missing key\(s\) \['seed'\]"),
    ({"name": "x", "kind": "import", "wieght": 1, "path": "data/x"},
     r"unknown key\(s\) \['wieght'\]"),
    ({"name": "x", "kind": "import", "weight": 1}, r"missing key\(s\) \['path'\]"),
    ({"name": "a/b", "kind": "import", "weight": 1, "path": "data/x"}, r"folder-safe name"),
    ({"name": "x", "kind": "simulator", "weight": 1, **{**RECIPE, "splits": {"tran": 1}}},
     r"splits \['tran'\] unknown"),
])
def test_refuses_ill_formed_entries(entry: dict, expect: str) -> None:
    with pytest.raises(SourceError, match=r"params.yaml dataset.sources\[1\].*" + expect):
        parse_sources([imp(Path("data/ok"), "ok"), entry], "params.yaml")


def test_refuses_duplicate_names_and_empty_lists() -> None:
    with pytest.raises(SourceError, match=r"\[1\] \('a'\): name 'a' already used by .*\[0\]"):
        parse_sources([imp(Path("data/a"), "a"), imp(Path("data/b"), "a")], "p")
    with pytest.raises(SourceError, match="non-empty list"):
        parse_sources([], "p")


def test_synthesize_renders_simulator_sources_only(tmp_path: Path, capsys) -> None:
    params = tmp_path / "params.yaml"
    out = tmp_path / "sources"
    params.write_text(yaml.safe_dump({"dataset": {"sources": [
        sim("a", count=8), sim("b", count=6, seed=7), imp(Path("data/x"), "x")]}}))
    assert main([str(params), str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "index.json"]
    assert len(read_dataset(out / "b").manifest) == 6
    # the simulator removed from params: its old rendering goes, the index stays
    params.write_text(yaml.safe_dump({"dataset": {"sources": [imp(Path("data/x"), "x")]}}))
    assert main([str(params), str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["index.json"]
    assert json.loads((out / "index.json").read_text()) == {"sources": {}}
    params.write_text(yaml.safe_dump({"dataset": {"sources": [sim("c", scanner="nope")]}}))
    capsys.readouterr()
    assert main([str(params), str(out)]) == 1
    assert "dataset.sources[0] ('c'): bad simulator recipe" in capsys.readouterr().err


def test_recency_selects_newest_batches(tmp_path: Path) -> None:
    for name in ("2026-01-01T000000-5", "2026-02-01T000000-5", "2026-03-01T000000-5"):
        make_dataset(tmp_path / name, count=5, image_size=32)
    assert [p.name for p in frontline_batches(tmp_path, 2)] == [
        "2026-02-01T000000-5", "2026-03-01T000000-5"]
    assert frontline_batches(tmp_path, 0) == []
    assert len(frontline_batches(tmp_path, -1)) == 3
    assert frontline_batches(tmp_path / "missing", -1) == []
