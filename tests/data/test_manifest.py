"""The manifest schema: what it accepts, what it refuses, and how it says so."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from atr.data.manifest import (
    DATASET_FILE,
    MANIFEST_FILE,
    ManifestError,
    manifest_columns,
    read_dataset,
    validate_manifest,
    write_dataset_info,
    write_manifest,
)
from atr.policy.taxonomy import Taxonomy


def frame(taxonomy: Taxonomy, n: int = 3) -> pd.DataFrame:
    rows = []
    for i in range(n):
        row = {
            "image": f"batch-00000/{i:06d}.png",
            "raw": None,
            "item_id": f"it{i}",
            "split": "train",
            "scanner_id": "s1",
            "source": "test",
            "width": 100,
            "height": 50,
            **{c: 0 for c in taxonomy.names},
            "paper_only": 0,
            "no_threat": 0,
            "boxes": "[]",
            "meta": "{}",
        }
        rows.append(row)
    return pd.DataFrame(rows, columns=manifest_columns(taxonomy))


def test_valid_frame_is_accepted_with_canonical_dtypes(taxonomy):
    df = frame(taxonomy)
    df.loc[0, ["document", "paper_only", "no_threat"]] = 1
    df.loc[1, "knife"] = 1
    df.loc[1, "boxes"] = json.dumps([{"label": "knife", "xyxy": [1, 2, 30, 40]}])
    out = validate_manifest(df, taxonomy)
    assert out["knife"].dtype == "int8" and out["paper_only"].dtype == "int8"
    assert out["no_threat"].dtype == "int8" and list(out.columns[-4:]) == [
        "paper_only", "no_threat", "boxes", "meta"]
    assert out["width"].dtype == "int64"


def test_bad_split_message_names_file_row_item_and_field(taxonomy):
    df = frame(taxonomy)
    df.loc[1, "split"] = "foo"
    with pytest.raises(ManifestError) as e:
        validate_manifest(df, taxonomy, source="data/x/manifest.parquet")
    assert str(e.value).startswith(
        "data/x/manifest.parquet: row 2 (item_id 'it1'): field 'split': 'foo' not in ("
    )


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("knife", 2, "field 'knife': 2 not in (0, 1)"),
        ("image", "/abs/x.png", "field 'image': '/abs/x.png' is absolute"),
        ("image", "batch-00000/../../x.png", "escapes the dataset folder"),
        ("raw", "..\\x.png", "backslashes"),
        ("boxes", "[{", "field 'boxes': not valid JSON"),
        ("boxes", '[{"label": "ufo", "xyxy": [0, 0, 1, 1]}]', "label 'ufo' not in the taxonomy"),
        ("boxes", '[{"label": "knife", "xyxy": [0, 0, 1]}]', "xyxy must be 4 finite numbers"),
        ("boxes", '[{"label": "knife", "xyxy": [0, 0, 101, 5]}]', "not ordered inside the 100x50"),
        ("boxes", '{"label": "knife"}', "not a JSON list"),
        ("meta", "[1, 2]", "field 'meta': not a JSON object"),
        ("item_id", "", "field 'item_id'"),
        ("width", 0, "field 'width'"),
    ],
)
def test_bad_values_are_refused_by_row_and_field(taxonomy, column, value, expected):
    df = frame(taxonomy)
    df[column] = df[column].astype(object)
    df.at[2, column] = value
    with pytest.raises(ManifestError) as e:
        validate_manifest(df, taxonomy, source="m.parquet")
    msg = str(e.value)
    assert "m.parquet: row 3 (item_id " in msg and expected in msg


def test_box_label_must_be_set_in_its_class_column(taxonomy):
    df = frame(taxonomy)
    df.loc[0, "boxes"] = json.dumps([{"label": "knife", "xyxy": [0, 0, 5, 5]}])
    with pytest.raises(ManifestError, match=r"row 1 .*field 'knife': 0 but a box is labelled"):
        validate_manifest(df, taxonomy)


def test_paper_only_with_a_non_paper_class_is_refused(taxonomy):
    df = frame(taxonomy)
    df.loc[1, ["document", "paper_only", "no_threat", "lithium_battery"]] = 1
    with pytest.raises(
        ManifestError, match=r"row 2 .*'paper_only': 1 but non-paper.*lithium_battery"
    ):
        validate_manifest(df, taxonomy)


def test_duplicate_item_id_names_both_rows(taxonomy):
    df = frame(taxonomy)
    df.loc[2, "item_id"] = "it0"
    with pytest.raises(
        ManifestError, match=r"row 3 \(item_id 'it0'\): field 'item_id': duplicate of row 1"
    ):
        validate_manifest(df, taxonomy)


def test_wrong_types_and_columns_are_refused(taxonomy):
    df = frame(taxonomy)
    with pytest.raises(ManifestError, match=r"columns: missing \['meta'\]"):
        validate_manifest(df.drop(columns="meta"), taxonomy)
    with pytest.raises(ManifestError, match=r"unexpected \['extra'\]"):
        validate_manifest(df.assign(extra=1), taxonomy)
    with pytest.raises(ManifestError, match="field 'knife'.*float64"):
        validate_manifest(df.astype({"knife": "float64"}), taxonomy)
    with pytest.raises(ManifestError, match="row 1 .*field 'source'.*type"):
        df2 = df.astype({"source": object})
        df2.at[0, "source"] = 7
        validate_manifest(df2, taxonomy)


def test_check_files_reports_missing_images(taxonomy, tmp_path):
    df = frame(taxonomy, 1)
    with pytest.raises(
        ManifestError, match="field 'image': file 'batch-00000/000000.png' not found"
    ):
        validate_manifest(df, taxonomy, root=tmp_path, check_files=True)


def _dataset(tmp_path: Path, taxonomy: Taxonomy, n: int = 2) -> Path:
    df = frame(taxonomy, n)
    for p in df["image"]:
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_bytes(b"x")
    write_manifest(df, tmp_path, taxonomy)
    write_dataset_info(tmp_path, taxonomy, "test")
    return tmp_path


def test_write_then_read_round_trips_and_is_atomic(taxonomy, tmp_path):
    root = _dataset(tmp_path, taxonomy)
    ds = read_dataset(root)
    assert ds.taxonomy.names == taxonomy.names and len(ds.manifest) == 2
    assert ds.targets().shape == (2, len(taxonomy.model_outputs))
    assert sorted(p.name for p in root.iterdir()) == ["batch-00000", DATASET_FILE, MANIFEST_FILE]
    bad = frame(taxonomy, 2)
    bad.loc[0, "split"] = "nope"
    with pytest.raises(ManifestError):
        write_manifest(bad, root, taxonomy)
    assert read_dataset(root / MANIFEST_FILE).manifest["split"].tolist() == ["train", "train"]


def test_read_checks_files_taxonomy_and_presence(taxonomy, tmp_path):
    root = _dataset(tmp_path, taxonomy)
    other = Taxonomy.from_dict({"classes": [{"name": "document", "group": "paper"}]})
    with pytest.raises(ManifestError, match="taxonomy classes"):
        read_dataset(root, taxonomy=other)
    (root / "batch-00000" / "000001.png").unlink()
    with pytest.raises(
        ManifestError, match=r"manifest.parquet: row 2 \(item_id 'it1'\): field 'image'"
    ):
        read_dataset(root)
    with pytest.raises(ManifestError, match="dataset.json: file not found"):
        read_dataset(tmp_path / "nowhere")


def test_no_threat_contradicting_the_classes_is_refused(taxonomy):
    df = frame(taxonomy)
    df.loc[0, ["no_threat", "narcotics"]] = 1
    df.loc[2, ["document", "paper_only"]] = 1  # only paper, yet "a threat may be there"
    with pytest.raises(ManifestError) as e:
        validate_manifest(df, taxonomy)
    msg = str(e.value)
    assert "row 1 (item_id 'it0'): field 'no_threat': 1 but threat class(es) ['narcotics']" in msg
    assert "row 3 (item_id 'it2'): field 'no_threat': 0 but paper_only is 1" in msg


def test_targets_follow_the_models_outputs_not_the_stored_taxonomy(taxonomy, tmp_path):
    root = _dataset(tmp_path, taxonomy, n=3)
    df = read_dataset(root).manifest
    df.loc[1, "no_threat"] = 1
    write_manifest(df, root, taxonomy)
    ds = read_dataset(root)
    assert ds.targets()[:, 0].tolist() == [0, 0, 0]  # stored taxonomy: paper_only first
    outputs = Taxonomy.from_dict({**taxonomy.to_dict(), "low_risk": "no_threat"}).model_outputs
    assert outputs[0] == "no_threat"
    assert ds.targets(outputs=outputs)[:, 0].tolist() == [0, 1, 0]
    assert ds.targets(ds.split("train"), outputs).shape == (3, 1 + len(taxonomy.threats))
    with pytest.raises(ValueError, match=r"model output\(s\) \['safe'\] are not manifest truth"):
        ds.targets(outputs=["safe"])


def _v1_folder(root: Path, taxonomy: Taxonomy) -> Path:
    """A dataset folder as ATR wrote it before schema 2 (no no_threat column)."""
    df = frame(taxonomy, 4).drop(columns="no_threat")
    df.loc[0, "toy"] = 1  # simulator row: complete labels, threat-free
    df["meta"] = [
        "{}",
        json.dumps({"importer": "coco", "original_name": "a.png"}),  # unknown completeness
        json.dumps({"importer": "folder"}),
        json.dumps({"label_source": "inspection"}),  # a frontline verdict: a knife
    ]
    df.loc[2, ["document", "paper_only"]] = 1  # only under v1's complete_labels: true
    df.loc[3, "knife"] = 1
    for p in df["image"]:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(b"x")
    df.to_parquet(root / MANIFEST_FILE, index=False)
    info = {"schema_version": 1, "source": "frontline",
            "taxonomy": {"name": taxonomy.name, "classes": [c.__dict__ for c in taxonomy.classes]}}
    (root / DATASET_FILE).write_text(json.dumps(info))
    return root


def test_schema_1_folders_are_upgraded_on_read_without_touching_the_files(taxonomy, tmp_path):
    root = _v1_folder(tmp_path, taxonomy)
    before = {p.name: p.read_bytes() for p in (root / MANIFEST_FILE, root / DATASET_FILE)}
    ds = read_dataset(root)
    assert ds.info["upgraded_from"] == 1
    assert ds.manifest["no_threat"].tolist() == [1, 0, 1, 0]
    metas = [json.loads(m) for m in ds.manifest["meta"]]
    assert [m.get("complete_labels") for m in metas] == [None, False, True, None]
    assert {p.name: p.read_bytes() for p in (root / MANIFEST_FILE, root / DATASET_FILE)} == before


def test_unknown_schema_versions_and_broken_v1_manifests_are_refused(taxonomy, tmp_path):
    root = _v1_folder(tmp_path, taxonomy)
    pd.read_parquet(root / MANIFEST_FILE).drop(columns="meta").to_parquet(root / MANIFEST_FILE)
    with pytest.raises(ManifestError, match=r"manifest.parquet: schema_version 1 manifest: col"):
        read_dataset(root)
    info = json.loads((root / DATASET_FILE).read_text())
    (root / DATASET_FILE).write_text(json.dumps({**info, "schema_version": 3}))
    with pytest.raises(ManifestError, match=r"dataset.json: schema_version 3 is not one this"):
        read_dataset(root)
