"""Bad sources are refused with the file and line/annotation named, and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atr.data.importers import DatasetImportError, import_dataset


@pytest.fixture
def sixray(tmp_path, image_factory) -> Path:
    """A CSV source with two good images; tests append bad lines."""
    src = tmp_path / "src"
    image_factory(src / "a", "gray8")
    image_factory(src / "b", "rgb_jpeg")
    (src / "labels.csv").write_text("name,knife,firearm\na,1,0\nb,0,0\n")
    return src


def refused(tmp_path: Path, no_leftovers, cfg: dict, match: str) -> None:
    out = tmp_path / "out"
    cfg = {"importer": {"name": "t", "out": str(out), **cfg}}
    with pytest.raises(DatasetImportError, match=match):
        import_dataset(cfg)
    assert not out.exists() and no_leftovers(tmp_path) == []


def csv_cfg(src: Path, **kw) -> dict:
    return {"format": "sixray", "source": str(src / "labels.csv"), "class_map": {}, **kw}


def append(src: Path, text: str) -> None:
    with open(src / "labels.csv", "a") as fh:
        fh.write(text)


def test_missing_image(tmp_path, sixray, no_leftovers):
    append(sixray, "ghost,1,0\n")
    refused(tmp_path, no_leftovers, csv_cfg(sixray), r"labels.csv line 4: image 'ghost' not found")


def test_corrupt_and_non_image_files(tmp_path, sixray, no_leftovers):
    good = (sixray / "b.jpg").read_bytes()
    (sixray / "c.jpg").write_bytes(good[: len(good) // 3])
    append(sixray, "c.jpg,0,0\n")
    refused(tmp_path, no_leftovers, csv_cfg(sixray), r"labels.csv line 4: image 'c.jpg': corrupt")
    (sixray / "c.jpg").write_bytes(b"GIF? no, plain text")
    refused(tmp_path, no_leftovers, csv_cfg(sixray), r"line 4: image 'c.jpg': not a recognised")


def test_unknown_class_column_refused_unless_ignored(tmp_path, sixray, no_leftovers):
    (sixray / "labels.csv").write_text("name,knife,Taser\na,1,0\nb,0,0\n")
    refused(
        tmp_path,
        no_leftovers,
        csv_cfg(sixray),
        r"labels.csv line 1 \(column 'Taser'\): class 'Taser'",
    )
    out = import_dataset(
        {"importer": {**csv_cfg(sixray, unknown_class="ignore"), "out": str(tmp_path / "ok")}}
    )
    assert out.is_dir()


def test_bad_label_value_and_duplicate_name(tmp_path, sixray, no_leftovers):
    append(sixray, "a,1,0\n")
    refused(
        tmp_path,
        no_leftovers,
        csv_cfg(sixray),
        r"labels.csv line 4: image 'a.png' already described at labels.csv line 2",
    )
    (sixray / "labels.csv").write_text("name,knife,firearm\na,yes,0\n")
    refused(tmp_path, no_leftovers, csv_cfg(sixray), r"line 2: column 'knife': 'yes' is not 0/1")


def test_class_map_to_a_non_atr_class(tmp_path, sixray, no_leftovers):
    refused(
        tmp_path,
        no_leftovers,
        csv_cfg(sixray, class_map={"knife": "blade"}),
        r"importer.class_map: target\(s\) \{'knife': 'blade'\} are not ATR classes",
    )


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_paths_escaping_the_source_are_refused(tmp_path, image_factory, no_leftovers, kind):
    src = tmp_path / "src"
    outside = image_factory(tmp_path / "secret", "gray8")
    image_factory(src / "ok", "gray8")
    name = {"dotdot": "../secret.png", "absolute": str(outside), "symlink": "link.png"}[kind]
    if kind == "symlink":
        (src / "link.png").symlink_to(outside)
    coco = {
        "images": [{"id": 1, "file_name": "ok.png"}, {"id": 2, "file_name": name}],
        "annotations": [],
        "categories": [],
    }
    (src / "ann.json").write_text(json.dumps(coco))
    refused(
        tmp_path,
        no_leftovers,
        {"format": "coco", "source": str(src / "ann.json")},
        r"ann.json image id 2: image path .* leaves the source folder",
    )


def test_coco_unknown_category_and_dangling_annotation(tmp_path, image_factory, no_leftovers):
    src = tmp_path / "src"
    image_factory(src / "a", "rgba")
    coco = {
        "images": [{"id": 1, "file_name": "a.png"}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5]}],
        "categories": [{"id": 2, "name": "Taser"}],
    }
    (src / "ann.json").write_text(json.dumps(coco))
    cfg = {"format": "coco", "source": str(src / "ann.json")}
    refused(tmp_path, no_leftovers, cfg, r"ann.json category id 2: class 'Taser'")
    coco["categories"] = [{"id": 2, "name": "knife"}]
    coco["annotations"][0]["image_id"] = 9
    (src / "ann.json").write_text(json.dumps(coco))
    refused(tmp_path, no_leftovers, cfg, r"ann.json annotation id 5: image_id 9 not in images")
    coco["annotations"][0].update(image_id=1, bbox=[0, 0, -3, 5])
    (src / "ann.json").write_text(json.dumps(coco))
    refused(tmp_path, no_leftovers, cfg, r"annotation id 5: bbox \[0, 0, -3, 5\] is not")


def test_yolo_bad_lines(tmp_path, image_factory, no_leftovers):
    src = tmp_path / "y"
    image_factory(src / "images" / "a", "gray16")
    (src / "labels").mkdir(parents=True)
    cfg = {"format": "yolo", "source": str(src), "names": ["knife"]}
    (src / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n3 0.5 0.5 0.1 0.1\n")
    refused(tmp_path, no_leftovers, cfg, r"a.txt line 2: class index 3 outside 0..0")
    (src / "labels" / "a.txt").write_text("0 0.5 0.5 0.1\n")
    refused(tmp_path, no_leftovers, cfg, r"a.txt line 1: expected 'class cx cy w h'")
    (src / "labels" / "a.txt").write_text("0 50 50 10 10\n")
    refused(tmp_path, no_leftovers, cfg, r"a.txt line 1: box .* not normalised")


def test_voc_and_labelstudio_malformed(tmp_path, image_factory, no_leftovers):
    src = tmp_path / "voc"
    image_factory(src / "JPEGImages" / "a", "gray8")
    (src / "Annotations").mkdir()
    (src / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.png</filename><object><name>knife</name>"
        "<bndbox><xmin>x</xmin></bndbox></object></annotation>"
    )
    refused(
        tmp_path,
        no_leftovers,
        {"format": "voc", "source": str(src)},
        r"a.xml object #1: <bndbox> needs numeric",
    )
    (src / "Annotations" / "a.xml").write_text("<annotation><filename>a.png")
    refused(tmp_path, no_leftovers, {"format": "voc", "source": str(src)}, r"a.xml: not valid XML")
    tasks = [
        {
            "id": 4,
            "data": {"image": "https://example.org/a.png"},
            "annotations": [{"id": 1, "result": []}],
        }
    ]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    refused(
        tmp_path,
        no_leftovers,
        {"format": "labelstudio", "source": str(tmp_path / "ls.json")},
        r"ls.json task id 4: image 'https://example.org/a.png' is remote",
    )
    (tmp_path / "ls.json").write_text(
        json.dumps(
            [
                {
                    "id": 5,
                    "data": {"image": "a.png"},
                    "annotations": [
                        {"id": 2, "result": [{"type": "choices", "value": {"choices": ["UFO"]}}]}
                    ],
                }
            ]
        )
    )
    refused(
        tmp_path,
        no_leftovers,
        {
            "format": "labelstudio",
            "source": str(tmp_path / "ls.json"),
            "images_dir": str(src / "JPEGImages"),
        },
        r"ls.json task id 5: class 'UFO'",
    )


def test_config_errors(tmp_path, no_leftovers):
    refused(
        tmp_path, no_leftovers, {"format": "tfrecord", "source": "x"}, "importer.format 'tfrecord'"
    )
    refused(tmp_path, no_leftovers, {"format": "folder"}, "importer.source is not set")
    refused(
        tmp_path,
        no_leftovers,
        {"format": "folder", "source": str(tmp_path / "none")},
        "not a folder",
    )
    (tmp_path / "empty").mkdir()
    refused(
        tmp_path,
        no_leftovers,
        {"format": "folder", "source": str(tmp_path / "empty")},
        "no images found",
    )
