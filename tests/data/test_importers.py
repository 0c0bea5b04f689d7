"""Each importer on a small source with every image kind real scanners produce."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from atr.config import compose
from atr.data.importers import import_dataset
from atr.data.importers.base import DatasetImportError
from atr.data.manifest import read_dataset
from atr.package.preprocess import decode_image


def run(taxonomy, fmt: str, source: Path, out: Path, **opts) -> Path:
    cfg = {
        "taxonomy": taxonomy.to_dict(),
        "importer": {"format": fmt, "name": fmt, "source": str(source), "out": str(out), **opts},
    }
    return import_dataset(cfg)


def check_images(root: Path, originals: dict[str, Path]) -> None:
    """Stored bytes are the originals' (extension kept) and every image decodes."""
    ds = read_dataset(root)
    for row in ds.manifest.itertuples():
        original = originals[json.loads(row.meta)["original_name"]]
        stored = root / row.image
        assert stored.read_bytes() == original.read_bytes()
        assert stored.suffix == original.suffix
        assert decode_image(stored).shape == (row.height, row.width, 3)


def test_folder_import_all_image_kinds(taxonomy, tmp_path, image_factory):
    src = tmp_path / "src"
    classes = {
        "gray8": "knife",
        "gray16": "document",
        "rgb_jpeg": "document",
        "rgba": "clothing",
        "wide": "knife",
    }
    files = {}
    for kind, cls in classes.items():
        path = image_factory(src / cls / kind, kind)
        files[path.relative_to(src).as_posix()] = path
    out = run(taxonomy, "folder", src, tmp_path / "out", scanner_id="lineA", seed=1)
    m = read_dataset(out).manifest.set_index("item_id")
    assert set(m.index) == {f"folder/{rel}" for rel in files}
    wide = m.loc["folder/knife/wide.png"]
    assert (wide["width"], wide["height"]) == (3000, 300) and wide["knife"] == 1
    assert m.loc["folder/document/gray16.png", "document"] == 1
    assert (m["paper_only"] == 0).all()  # complete_labels false: never claimed
    assert (m["scanner_id"] == "lineA").all() and set(m["split"]) <= {
        "train",
        "val",
        "calib",
        "test",
    }
    assert json.loads(wide["meta"])["importer"] == "folder"
    check_images(out, files)
    out2 = run(taxonomy, "folder", src, tmp_path / "out2", complete_labels=True)
    m2 = read_dataset(out2).manifest.set_index("item_id")
    assert m2.loc["folder/document/gray16.png", "paper_only"] == 1
    assert m2.loc["folder/knife/wide.png", "paper_only"] == 0


def test_sixray_csv_with_default_class_map_via_compose(taxonomy, tmp_path, image_factory):
    src = tmp_path / "sixray"
    names = {"P001": "gray8", "P002": "rgb_jpeg", "N003": "gray16"}
    files = {p.name: p for p in (image_factory(src / n, k) for n, k in names.items())}
    (src / "labels.csv").write_text(
        "name,Gun,Knife,Scissors\nP001,1,-1,0\nP002,0,1,1\nN003,-1,-1,-1\n"
    )
    cfg = compose(
        "import",
        [
            "importer=sixray",
            f"importer.source={src / 'labels.csv'}",
            f"paths.data_dir={tmp_path / 'data'}",
            "importer.name=six",
        ],
    )
    out = import_dataset(cfg)
    assert out == tmp_path / "data" / "imports" / "six"
    m = read_dataset(out).manifest.set_index("item_id")
    assert m.loc["six/P001.png", "firearm"] == 1 and m.loc["six/P001.png", "knife"] == 0
    assert m.loc["six/P002.jpg", ["knife", "tool"]].tolist() == [1, 1]
    assert m.loc["six/N003.png", taxonomy.names].sum() == 0
    check_images(out, files)


def test_coco_boxes_become_pixel_xyxy_and_labels(taxonomy, tmp_path, image_factory):
    src = tmp_path / "coco"
    a, b = image_factory(src / "img" / "a", "rgba"), image_factory(src / "img" / "b", "wide")
    coco = {
        "images": [
            {"id": 1, "file_name": "img/a.png", "split": "val"},
            {"id": 2, "file_name": "img/b.png", "split": "train"},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 3, "bbox": [10, 20, 30, 40]},
            {"id": 11, "image_id": 1, "category_id": 4, "bbox": [300, 0, 50, 10]},
        ],
        "categories": [
            {"id": 3, "name": "Gun"},
            {"id": 4, "name": "Powerbank"},
            {"id": 5, "name": "Baton"},
        ],
    }
    (src / "ann.json").write_text(json.dumps(coco))
    out = run(
        taxonomy,
        "coco",
        src / "ann.json",
        tmp_path / "out",
        split_field="split",
        class_map={"Gun": "firearm", "Powerbank": "lithium_battery", "Baton": None},
    )
    m = read_dataset(out).manifest.set_index("item_id")
    row = m.loc["coco/img/a.png"]
    assert row["split"] == "val" and row["firearm"] == 1 and row["lithium_battery"] == 1
    boxes = json.loads(row["boxes"])
    assert boxes[0] == {"label": "firearm", "xyxy": [10.0, 20.0, 40.0, 60.0]}
    assert boxes[1]["xyxy"] == [300.0, 0.0, 310.0, 10.0]  # clipped to the 310 px width
    assert m.loc["coco/img/b.png", taxonomy.names].sum() == 0  # no annotation: negative
    check_images(out, {"img/a.png": a, "img/b.png": b})


def test_yolo_normalised_boxes_and_split_folders(taxonomy, tmp_path, image_factory):
    src = tmp_path / "yolo"
    a = image_factory(src / "images" / "train" / "a", "gray16")  # 300x340
    b = image_factory(src / "images" / "valid" / "b", "rgb_jpeg")
    (src / "classes.txt").write_text("knife\nGun\n")
    (src / "labels" / "train").mkdir(parents=True)
    (src / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.2 0.1\n\n0 0.1 0.1 0.2 0.2\n")
    out = run(taxonomy, "yolo", src, tmp_path / "out", class_map={"Gun": "firearm"})
    m = read_dataset(out).manifest.set_index("item_id")
    row = m.loc["yolo/train/a.png"]
    assert row["split"] == "train" and m.loc["yolo/valid/b.jpg", "split"] == "val"
    assert json.loads(row["boxes"]) == [
        {"label": "firearm", "xyxy": [120.0, 153.0, 180.0, 187.0]},
        {"label": "knife", "xyxy": [0.0, 0.0, 60.0, 68.0]},
    ]
    assert m.loc["yolo/valid/b.jpg", taxonomy.names].sum() == 0
    check_images(out, {"train/a.png": a, "valid/b.jpg": b})


def test_voc_xml_with_imagesets(taxonomy, tmp_path, image_factory):
    src = tmp_path / "voc"
    a = image_factory(src / "JPEGImages" / "a", "rgb_jpeg")
    b = image_factory(src / "JPEGImages" / "b", "gray8")
    (src / "Annotations").mkdir()
    obj = (
        "<object><name>knife</name><bndbox><xmin>5</xmin><ymin>6</ymin><xmax>50</xmax>"
        "<ymax>60</ymax></bndbox></object>"
    )
    (src / "Annotations" / "a.xml").write_text(
        f"<annotation><filename>a.jpg</filename>{obj}</annotation>"
    )
    (src / "Annotations" / "b.xml").write_text(
        "<annotation><filename>b.png</filename></annotation>"
    )
    (src / "ImageSets" / "Main").mkdir(parents=True)
    (src / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    (src / "ImageSets" / "Main" / "test.txt").write_text("b\n")
    (src / "ImageSets" / "Main" / "knife_train.txt").write_text("a 1\n")  # per-class: ignored
    out = run(taxonomy, "voc", src, tmp_path / "out")
    m = read_dataset(out).manifest.set_index("item_id")
    assert m.loc["voc/a.jpg", "split"] == "train" and m.loc["voc/b.png", "split"] == "test"
    assert json.loads(m.loc["voc/a.jpg", "boxes"]) == [
        {"label": "knife", "xyxy": [5.0, 6.0, 50.0, 60.0]}
    ]
    check_images(out, {"a.jpg": a, "b.png": b})


def test_voc_image_ext_finds_images_re_encoded_after_annotation(taxonomy, tmp_path,
                                                                image_factory):
    """HUMS ThreatsRGB: the XML names image_0_1.png, the folder holds image_0_1.jpg."""
    src = tmp_path / "voc"
    a = image_factory(src / "pics" / "image_0_1", "rgb_jpeg")
    (src / "Annotations").mkdir()
    (src / "Annotations" / "image_0_1.xml").write_text(
        "<annotation><filename>image_0_1.png</filename><object><name>Knife</name><bndbox>"
        "<xmin>5</xmin><ymin>6</ymin><xmax>50</xmax><ymax>60</ymax></bndbox></object>"
        "</annotation>")
    opts = {"images_dir": str(src / "pics"), "class_map": {"Knife": "knife"}}
    with pytest.raises(DatasetImportError, match="image_0_1.png' not found"):
        run(taxonomy, "voc", src, tmp_path / "refused", **opts)
    out = run(taxonomy, "voc", src, tmp_path / "out", image_ext=".jpg", **opts)
    m = read_dataset(out).manifest.set_index("item_id")
    assert json.loads(m.loc["voc/image_0_1.jpg", "boxes"]) == [
        {"label": "knife", "xyxy": [5.0, 6.0, 50.0, 60.0]}]
    check_images(out, {"image_0_1.jpg": a})
    with pytest.raises(DatasetImportError, match="with its dot"):
        run(taxonomy, "voc", src, tmp_path / "bad", image_ext="jpg", **opts)


def test_labelstudio_choices_rectangles_and_upload_paths(taxonomy, tmp_path, image_factory):
    media = tmp_path / "media"
    a = image_factory(media / "1" / "0a1b2c3d-parcel", "gray8")  # 320x300
    b = image_factory(media / "scan2", "rgba")
    rect = {
        "type": "rectanglelabels",
        "value": {
            "x": 10,
            "y": 20,
            "width": 50,
            "height": 25,
            "rotation": 0,
            "rectanglelabels": ["Knife"],
        },
    }
    tasks = [
        {
            "id": 1,
            "data": {"image": "/data/upload/1/0a1b2c3d-parcel.png"},
            "annotations": [
                {"id": 7, "result": [rect]},
                {"id": 8, "result": [{"type": "choices", "value": {"choices": ["book"]}}]},
            ],
        },
        {
            "id": 2,
            "data": {"image": "/data/local-files/?d=scan2.png"},
            "annotations": [
                {"id": 9, "result": [{"type": "choices", "value": {"choices": ["toy"]}}]}
            ],
        },
        {"id": 3, "data": {"image": "/data/upload/1/missing.png"}, "annotations": []},  # unlabelled
        {
            "id": 4,
            "data": {"image": "/data/upload/1/missing.png"},
            "annotations": [{"id": 10, "was_cancelled": True, "result": []}],
        },
    ]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    out = run(
        taxonomy,
        "labelstudio",
        tmp_path / "export.json",
        tmp_path / "out",
        images_dir=str(media),
        class_map={"Knife": "knife"},
        complete_labels=True,
    )
    m = read_dataset(out).manifest.set_index("item_id")
    assert len(m) == 2
    row = m.loc["labelstudio/1/0a1b2c3d-parcel.png"]
    assert row[["knife", "book", "paper_only"]].tolist() == [1, 1, 0]
    assert json.loads(row["boxes"]) == [{"label": "knife", "xyxy": [32.0, 60.0, 192.0, 135.0]}]
    assert m.loc["labelstudio/scan2.png", "toy"] == 1
    check_images(out, {"1/0a1b2c3d-parcel.png": a, "scan2.png": b})


def test_labelstudio_rotated_rectangle_uses_pixel_geometry(taxonomy, tmp_path, image_factory):
    image_factory(tmp_path / "x", "gray8")  # 320x300
    rect = {
        "type": "rectanglelabels",
        "original_width": 320,
        "original_height": 300,
        "value": {
            "x": 50,
            "y": 10,
            "width": 10,
            "height": 10,
            "rotation": 90,
            "rectanglelabels": ["knife"],
        },
    }
    tasks = [{"id": 1, "data": {"image": "x.png"}, "annotations": [{"id": 1, "result": [rect]}]}]
    (tmp_path / "e.json").write_text(json.dumps(tasks))
    out = run(taxonomy, "labelstudio", tmp_path / "e.json", tmp_path / "out")
    (box,) = json.loads(read_dataset(out).manifest.loc[0, "boxes"])
    # 32x30 px box rotated 90 degrees about (160, 30): spans x 130..160, y 30..62.
    assert np.allclose(box["xyxy"], [130.0, 30.0, 160.0, 62.0])
