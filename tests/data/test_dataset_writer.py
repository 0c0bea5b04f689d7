"""DatasetWriter: batch layout, 16-bit raw images, determinism and all-or-nothing writes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from atr.data.dataset_writer import DatasetWriter, encode_png
from atr.data.manifest import ManifestError, read_dataset
from atr.data.splits import assign_splits, check_fractions


def rgb(seed: int, h: int = 20, w: int = 30) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_five(out, taxonomy, **kw):
    with DatasetWriter(out, taxonomy, source="test", batch_size=2, **kw) as w:
        for i in range(5):
            raw = np.full((40, 30), 1000 * i + 7, np.uint16) if i == 0 else None
            w.add(
                f"id{i}",
                rgb(i),
                raw=raw,
                split="train" if i % 2 else "test",
                scanner_id="s1",
                labels={"knife": int(i == 3), "document": int(i == 4)},
                boxes=[{"label": "knife", "xyxy": [1, 1, 5, 5]}] if i == 3 else [],
                meta={"i": i},
            )
    return out


def test_writes_batches_raw_and_a_readable_dataset(taxonomy, tmp_path, no_leftovers):
    out = write_five(tmp_path / "ds", taxonomy)
    ds = read_dataset(out)
    m = ds.manifest
    assert m["image"].tolist() == [
        "batch-00000/000000.png",
        "batch-00000/000001.png",
        "batch-00001/000002.png",
        "batch-00001/000003.png",
        "batch-00002/000004.png",
    ]
    assert m.loc[0, "raw"] == "batch-00000/000000.raw.png" and m["raw"].isna().sum() == 4
    assert (m["width"] == 30).all() and (m["height"] == 20).all()
    # paper_only defaults to the taxonomy rule: only item 4 shows paper alone.
    assert m["paper_only"].tolist() == [0, 0, 0, 0, 1]
    # no_threat defaults to "no threat class present" (these labels are complete): all but 3
    assert m["no_threat"].tolist() == [1, 1, 1, 0, 1]
    assert ds.info["items"] == 5 and ds.info["splits"]["test"] == 3
    raw = np.asarray(Image.open(out / m.loc[0, "raw"]))
    assert raw.dtype == np.uint16 and raw.shape == (40, 30) and int(raw[0, 0]) == 7
    assert np.array_equal(np.asarray(Image.open(out / m.loc[1, "image"])), rgb(1))
    assert no_leftovers(tmp_path) == []


def test_png_encoding_is_deterministic(taxonomy, tmp_path):
    a, b = encode_png(rgb(5)), encode_png(rgb(5).copy())
    assert a == b and b"tIME" not in a
    write_five(tmp_path / "one", taxonomy)
    write_five(tmp_path / "two", taxonomy)
    for rel in ("batch-00000/000000.png", "batch-00000/000000.raw.png"):
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes()


def test_exception_midway_leaves_nothing(taxonomy, tmp_path, no_leftovers):
    with (
        pytest.raises(RuntimeError, match="boom"),
        DatasetWriter(tmp_path / "ds", taxonomy, source="t", batch_size=1) as w,
    ):
        for i in range(3):
            w.add(f"id{i}", rgb(i), split="train", scanner_id="s", labels={})
        raise RuntimeError("boom")
    assert not (tmp_path / "ds").exists() and no_leftovers(tmp_path) == []


def test_invalid_rows_refused_at_add_or_close_leave_nothing(taxonomy, tmp_path, no_leftovers):
    with (
        pytest.raises(ValueError, match="split 'nope'"),
        DatasetWriter(tmp_path / "ds", taxonomy, source="t") as w,
    ):
        w.add("a", rgb(0), split="nope", scanner_id="s", labels={})
    with (
        pytest.raises(ValueError, match=r"label\(s\) \['ufo'\]"),
        DatasetWriter(tmp_path / "ds", taxonomy, source="t") as w,
    ):
        w.add("a", rgb(0), split="train", scanner_id="s", labels={"ufo": 1})
    with (
        pytest.raises(ValueError, match="added twice"),
        DatasetWriter(tmp_path / "ds", taxonomy, source="t") as w,
    ):
        w.add("a", rgb(0), split="train", scanner_id="s", labels={})
        w.add("a", rgb(1), split="train", scanner_id="s", labels={})
    # A claim only the schema catches (paper_only with a knife) fails at close.
    with (
        pytest.raises(ManifestError, match="paper_only"),
        DatasetWriter(tmp_path / "ds", taxonomy, source="t") as w,
    ):
        w.add("a", rgb(0), split="train", scanner_id="s", labels={"knife": 1}, paper_only=1)
    assert not (tmp_path / "ds").exists() and no_leftovers(tmp_path) == []


def test_existing_output_refused_unless_overwrite(taxonomy, tmp_path, no_leftovers):
    out = write_five(tmp_path / "ds", taxonomy)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_five(out, taxonomy)
    with DatasetWriter(out, taxonomy, source="second", overwrite=True) as w:
        w.add("only", rgb(9), split="val", scanner_id="s", labels={})
    assert read_dataset(out).manifest["item_id"].tolist() == ["only"]
    assert no_leftovers(tmp_path) == []


def test_image_bytes_are_stored_verbatim_with_their_extension(taxonomy, tmp_path):
    buf = io.BytesIO()
    Image.fromarray(rgb(3, 50, 70)).save(buf, format="JPEG")
    with DatasetWriter(tmp_path / "ds", taxonomy, source="t") as w:
        rel = w.add("j", buf.getvalue(), ext=".JPG", split="val", scanner_id="s", labels={})
    assert rel == "batch-00000/000000.jpg"
    assert (tmp_path / "ds" / rel).read_bytes() == buf.getvalue()
    m = read_dataset(tmp_path / "ds").manifest
    assert (m.loc[0, "width"], m.loc[0, "height"]) == (70, 50)


def test_assign_splits_is_stratified_deterministic_and_order_free(taxonomy):
    import pandas as pd

    n = 400
    df = pd.DataFrame(
        {
            "item_id": [f"i{k}" for k in range(n)],
            "paper_only": [int(k % 4 == 0) for k in range(n)],
            "any_threat": [int(k % 20 == 1) for k in range(n)],
        }
    )
    fr = {"train": 0.7, "val": 0.1, "calib": 0.1, "test": 0.1}
    s = assign_splits(df, fr, seed=3)
    assert s.equals(assign_splits(df, fr, seed=3))
    assert not s.equals(assign_splits(df, fr, seed=4))
    shuffled = df.sample(frac=1, random_state=0)
    assert assign_splits(shuffled, fr, seed=3).sort_index().equals(s)
    threats = s[df["any_threat"] == 1].value_counts().to_dict()  # 20 threat rows
    assert threats == {"train": 14, "val": 2, "calib": 2, "test": 2}
    assert s.value_counts().to_dict() == {"train": 280, "val": 40, "calib": 40, "test": 40}
    with pytest.raises(ValueError, match="sum to 1"):
        check_fractions({"train": 0.5})
    with pytest.raises(ValueError, match="unknown split"):
        check_fractions({"train": 0.5, "holdout": 0.5})


def test_no_threat_follows_the_rows_recorded_completeness_or_is_given(taxonomy, tmp_path):
    with DatasetWriter(tmp_path / "ds", taxonomy, source="t") as w:
        w.add("sim", rgb(0), split="train", scanner_id="s", labels={"toy": 1})
        w.add("partial", rgb(1), split="train", scanner_id="s", labels={"toy": 1},
              meta={"complete_labels": False})
        w.add("threats", rgb(2), split="train", scanner_id="s", labels={"toy": 1},
              meta={"complete_labels": "threats"})
        w.add("told", rgb(3), split="train", scanner_id="s", labels={"toy": 1}, no_threat=0)
    m = read_dataset(tmp_path / "ds").manifest
    assert m["no_threat"].tolist() == [1, 0, 1, 0] and m["paper_only"].sum() == 0
    with (
        pytest.raises(ValueError, match=r"item 'x': meta\['complete_labels'\]: \['knive'\]"),
        DatasetWriter(tmp_path / "bad", taxonomy, source="t") as w,
    ):
        w.add("x", rgb(0), split="train", scanner_id="s", labels={},
              meta={"complete_labels": ["knive"]})
