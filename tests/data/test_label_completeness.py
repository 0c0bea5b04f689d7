"""importer.complete_labels: each mode's paper_only / no_threat, recorded per source and row."""

from __future__ import annotations

import json

import numpy as np
import pytest

from atr.config import compose
from atr.data.dataset_writer import DatasetWriter
from atr.data.importers import DatasetImportError, import_dataset
from atr.data.label_completeness import LabelCompleteness
from atr.data.manifest import ManifestError, read_dataset

FOLDERS = {"Letter": "document", "Knife": "knife", "Toy": "toy", "Benign": None}
CLASS_MAP = "importer.class_map={Letter: document, Knife: knife, Toy: toy, Benign: null}"
NON_PAPER = ("[clothing, shoes, bottle, food, toy, electronics, cable, jewellery, tool, "
             "firearm, knife, ammunition, narcotics, lithium_battery]")


@pytest.fixture
def source(tmp_path, image_factory):
    src = tmp_path / "src"
    for folder in FOLDERS:
        image_factory(src / folder / "scan", "gray8")
    return src


def truth(source, tmp_path, setting: str) -> dict[str, tuple[int, int]]:
    cfg = compose("import", ["importer=folder", f"importer.source={source}", CLASS_MAP,
                             f"importer.out={tmp_path / 'out'}",
                             f"importer.complete_labels={setting}"])
    ds = read_dataset(import_dataset(cfg))
    m = ds.manifest
    folders = [json.loads(x)["original_name"].split("/")[0] for x in m["meta"]]
    return {f: (int(p), int(n)) for f, p, n in zip(folders, m["paper_only"], m["no_threat"],
                                                   strict=True)}


@pytest.mark.parametrize(
    ("setting", "expected"),
    [  # folder -> (paper_only, no_threat)
        ("false", {"Letter": (0, 0), "Knife": (0, 0), "Toy": (0, 0), "Benign": (0, 0)}),
        ("true", {"Letter": (1, 1), "Knife": (0, 0), "Toy": (0, 1), "Benign": (0, 1)}),
        ("threats", {"Letter": (0, 1), "Knife": (0, 0), "Toy": (0, 1), "Benign": (0, 1)}),
        ("[knife, firearm]", {"Letter": (0, 0), "Knife": (0, 0), "Toy": (0, 0), "Benign": (0, 0)}),
        (NON_PAPER, {"Letter": (1, 1), "Knife": (0, 0), "Toy": (0, 1), "Benign": (0, 1)}),
    ],
)
def test_each_mode_claims_absence_only_with_evidence(source, tmp_path, setting, expected):
    assert truth(source, tmp_path, setting) == expected


def test_setting_is_recorded_per_source_and_row_and_survives_a_rewrite(source, tmp_path):
    cfg = compose("import", ["importer=folder", f"importer.source={source}", CLASS_MAP,
                             f"importer.out={tmp_path / 'a'}", "importer.complete_labels=threats"])
    ds = read_dataset(import_dataset(cfg))
    info = json.loads((ds.root / "dataset.json").read_text())
    assert info["complete_labels"] == {"setting": "threats", "classes": sorted(ds.taxonomy.threats)}
    assert {json.loads(m)["complete_labels"] for m in ds.manifest["meta"]} == {"threats"}
    # A merge (like `atr prepare`) that leaves paper_only/no_threat to the writer keeps them:
    # the row's meta carries its evidence, so nothing is claimed that the source did not give.
    with DatasetWriter(tmp_path / "merged", ds.taxonomy, source="merged") as w:
        for row in ds.manifest.itertuples():
            w.add(row.item_id, (ds.root / row.image).read_bytes(), ext=".png", split=row.split,
                  scanner_id=row.scanner_id, labels={c: getattr(row, c) for c in ds.taxonomy.names},
                  meta=json.loads(row.meta))
    merged = read_dataset(tmp_path / "merged").manifest
    truth_columns = ["paper_only", "no_threat"]
    assert np.array_equal(merged[truth_columns], ds.manifest[truth_columns])
    assert merged["paper_only"].sum() == 0 and merged["no_threat"].sum() == 3


def test_a_claim_beyond_the_recorded_evidence_is_refused(taxonomy, tmp_path, no_leftovers):
    rgb = np.zeros((8, 8, 3), np.uint8)
    with (
        pytest.raises(ManifestError, match=r"'no_threat': 1 but complete_labels \['knife'\]"),
        DatasetWriter(tmp_path / "ds", taxonomy, source="t") as w,
    ):
        w.add("a", rgb, split="train", scanner_id="s", labels={}, no_threat=1,
              meta={"complete_labels": ["knife"]})
    with (
        pytest.raises(ManifestError, match=r"'paper_only': 1 but complete_labels 'threats'"),
        DatasetWriter(tmp_path / "ds", taxonomy, source="t") as w,
    ):
        w.add("a", rgb, split="train", scanner_id="s", labels={"document": 1}, paper_only=1,
              no_threat=1, meta={"complete_labels": "threats"})
    assert not (tmp_path / "ds").exists() and no_leftovers(tmp_path) == []


def test_bad_settings_are_refused_with_the_key(source, tmp_path):
    for setting, match in (("maybe", "importer: importer.complete_labels: 'maybe' is not"),
                           ("[knife, knive]", r"\['knive'\] are not ATR classes")):
        cfg = compose("import", ["importer=folder", f"importer.source={source}", CLASS_MAP,
                                 f"importer.out={tmp_path / 'x'}",
                                 f"importer.complete_labels={setting}"])
        with pytest.raises(DatasetImportError, match=match):
            import_dataset(cfg)
        assert not (tmp_path / "x").exists()


def test_spellings_normalise():
    assert LabelCompleteness.parse(None).spec is False
    assert LabelCompleteness.parse("all").spec is True
    assert LabelCompleteness.parse("none").spec is False
    assert LabelCompleteness.parse("Threats").spec == "threats"
    assert LabelCompleteness.parse(["knife", "firearm", "knife"]).spec == ("firearm", "knife")
