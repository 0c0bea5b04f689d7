"""Simulator images exported in each real format, imported back: the truth survives.

The class map is given in the README's form (`importer.class_map='{Gun: firearm, ...}'`)
and every exported class name is a source name, so an ignored map would fail the import.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.real_formats import FORMATS, TRAITS, export_dataset, original_id
from PIL import Image

from atr.config import compose
from atr.data.importers import import_dataset
from atr.data.manifest import read_dataset
from atr.package.preprocess import decode_image


def _expected_classes(row, traits, taxonomy) -> set[str]:
    present = {c for c in taxonomy.names if row[c] == 1}
    if traits.classes == "all":
        return present
    if traits.classes == "boxed":
        return {b["label"] for b in json.loads(row["boxes"])}
    first = next((t for t in taxonomy.threats if row[t] == 1), None)
    return set() if first is None else {first}


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_then_import_keeps_labels_boxes_splits_truth_and_raw(fmt, tiny_dataset, tmp_path):
    source, overrides = export_dataset(tiny_dataset, fmt, tmp_path / "src")
    assert any(o.startswith("importer.class_map={") for o in overrides)
    cfg = compose("import", [*overrides, f"importer.out={tmp_path / 'out'}", "importer.name=r"])
    imported = read_dataset(import_dataset(cfg))
    original = read_dataset(tiny_dataset)
    tax, traits = original.taxonomy, TRAITS[fmt]
    orig = original.manifest.set_index("item_id")
    got = imported.manifest.assign(orig_id=[original_id(i) for i in imported.manifest.item_id])
    assert sorted(got.orig_id) == sorted(orig.index)
    for row in got.to_dict("records"):
        want = orig.loc[row["orig_id"]]
        where = f"{fmt} {row['item_id']}"
        assert row["split"] == want["split"], where
        assert {c for c in tax.names if row[c] == 1} == _expected_classes(want, traits, tax), where
        assert row["no_threat"] == want["no_threat"], where  # every format keeps it
        assert row["paper_only"] == (want["paper_only"] if traits.paper_only else 0), where
        boxes = sorted((b["label"], b["xyxy"]) for b in json.loads(row["boxes"]))
        if traits.boxes:
            expected = sorted((b["label"], b["xyxy"]) for b in json.loads(want["boxes"]))
            assert [b[0] for b in boxes] == [b[0] for b in expected], where
            assert np.allclose([b[1] for b in boxes], [b[1] for b in expected], atol=0.02), where
        else:
            assert boxes == [], where
        image = decode_image(imported.root / row["image"])
        assert image.shape == (want["height"], want["width"], 3), where
        meta = json.loads(row["meta"])
        assert meta["complete_labels"] == (True if traits.classes == "all" else "threats")
        if traits.raw:
            raw = np.asarray(Image.open(imported.root / row["raw"]))
            assert raw.dtype == np.uint16, where
            assert np.array_equal(raw, np.asarray(Image.open(tiny_dataset / want["raw"]))), where
        else:
            assert row["raw"] is None, where
    assert got["no_threat"].sum() > 0 and got[tax.threats].to_numpy().sum() > 0
    if traits.paper_only:
        assert got["paper_only"].sum() == orig["paper_only"].sum() > 0
    info = json.loads((imported.root / "dataset.json").read_text())
    assert info["complete_labels"]["setting"] == meta["complete_labels"]
    assert Path(source).exists()
