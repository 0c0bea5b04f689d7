"""importer=dual_energy on a HUMS-shaped source: 16-bit low/high TIFF pairs per scan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atr.config import compose
from atr.data.importers import DatasetImportError, import_dataset
from atr.data.manifest import read_dataset

HUMS = ["importer=dual_energy", "importer.folders=[HighLow, NotThreats]",
        "importer.class_map={HighLow: knife, NotThreats: null}", "importer.complete_labels=threats"]


def pair(folder: Path, stem: str, seed: int, size=(40, 24), color: bool = False) -> np.ndarray:
    """Write <stem>.xif_lo.tif / _hi.tif (16-bit, LZW like HUMS), optionally an RGBA colour."""
    rng = np.random.default_rng(seed)
    w, h = size
    lo, hi = (rng.integers(0, 65536, (h, w), dtype=np.uint16) for _ in range(2))
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(lo).save(folder / f"{stem}.xif_lo.tif", compression="tiff_lzw")
    Image.fromarray(hi.astype(">u2")).save(folder / f"{stem}.xif_hi.tif")  # big-endian too
    if color:
        rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        Image.fromarray(rgba).save(folder / f"{stem}.xif_colored.tif", compression="tiff_lzw")
    return np.vstack([lo, hi])


@pytest.fixture
def hums(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    src = tmp_path / "hums"
    raws = {f"HighLow/2019_{k}.xif": pair(src / "HighLow", f"2019_{k}", k) for k in range(3)}
    raws |= {f"NotThreats/2020_{k}.xif": pair(src / "NotThreats", f"2020_{k}", 10 + k,
                                                 size=(30, 50), color=True) for k in range(3)}
    colour = src / "NotThreats" / "2020_0.xif_colored.tif"
    (src / "NotThreats" / "2020_0.xif_colored - Kopya.tif").write_bytes(colour.read_bytes())
    (src / "HighLow" / "convertToJPG.m").write_text("% not an image\n")
    pair(src / "ThreatsRGB", "other", 99)  # a folder left out by importer.folders
    return src, raws


def run(src: Path, tmp_path: Path, *extra: str) -> Path:
    cfg = compose("import", [*HUMS, f"importer.source={src}", f"importer.out={tmp_path / 'out'}",
                             "importer.name=hums", *extra])
    return import_dataset(cfg)


def test_pairs_become_exact_raw_with_colour_or_low_as_image(hums, tmp_path):
    src, raws = hums
    ds = read_dataset(run(src, tmp_path))
    m = ds.manifest.set_index("item_id")
    assert sorted(m.index) == sorted(f"hums/{k}" for k in raws)  # ThreatsRGB left out
    for key, expected in raws.items():
        row = m.loc[f"hums/{key}"]
        stored = np.asarray(Image.open(ds.root / row["raw"]))
        assert stored.dtype == np.uint16 and np.array_equal(stored, expected)
        assert (row["width"], row["height"]) == (expected.shape[1], expected.shape[0] // 2)
        meta = json.loads(row["meta"])
        image_file = meta.get("energy_color", meta["energy_low"])
        assert (ds.root / row["image"]).read_bytes() == (src / image_file).read_bytes()
        threat = key.startswith("HighLow")
        assert (row["knife"], row["no_threat"], row["paper_only"]) == (int(threat), 1 - threat, 0)
    assert m.loc["hums/NotThreats/2020_1.xif", "image"].endswith(".tif")
    info = json.loads((ds.root / "dataset.json").read_text())
    assert len(info["ignored_files"]) == 1 and "Kopya" in info["ignored_files"][0]


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("rm NotThreats/2020_1.xif_hi.tif", r"NotThreats/2020_1.xif: high-energy image "
         r"\(2020_1.xif_hi.\*\) missing beside 2020_1.xif_colored.tif, 2020_1.xif_lo.tif"),
        ("rm HighLow/2019_2.xif_lo.tif", r"HighLow/2019_2.xif: low-energy image .* 2019_2.xif_hi"),
        ("size HighLow/2019_1.xif_hi.tif", r"HighLow/2019_1.xif_hi.tif: 41x24 px, but the low"),
        ("size NotThreats/2020_2.xif_colored.tif", r"2020_2.xif_colored.tif: 41x24 px, but"),
        ("gray8 HighLow/2019_0.xif_lo.tif", r"HighLow/2019_0.xif_lo.tif: mode L is not 16-bit"),
        ("rgb HighLow/2019_0.xif_hi.tif", r"HighLow/2019_0.xif_hi.tif: mode RGB is not 16-bit"),
        ("junk HighLow/2019_1.xif_lo.tif", r"HighLow/2019_1.xif_lo.tif: unreadable image"),
        ("truncate HighLow/2019_1.xif_hi.png", r"HighLow/2019_1.xif_hi.png: unreadable image data"),
    ],
)
def test_broken_scans_are_refused_naming_the_file(hums, tmp_path, no_leftovers, damage, match):
    src, _ = hums
    action, rel = damage.split()
    path = src / rel
    if action == "rm":
        path.unlink()
    elif action == "size":
        Image.new("I;16" if "_hi" in rel else "RGBA", (41, 24)).save(path)
    elif action in ("gray8", "rgb"):
        Image.new("L" if action == "gray8" else "RGB", (40, 24)).save(path)
    elif action == "junk":
        path.write_bytes(b"not a tiff at all")
    else:  # a PNG high (header first), pixel data cut: found when the pair is read
        tif = path.with_suffix(".tif")
        Image.open(tif).save(path)
        tif.unlink()
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetImportError, match=match):
        run(src, tmp_path)
    assert not (tmp_path / "out").exists() and no_leftovers(tmp_path) == []


def test_options_skip_incomplete_scans_refuse_strays_and_check_folders(hums, tmp_path):
    src, raws = hums
    (src / "NotThreats" / "2020_1.xif_hi.tif").unlink()
    ds = read_dataset(run(src, tmp_path, "importer.incomplete=skip"))
    assert "hums/NotThreats/2020_1.xif" not in set(ds.manifest["item_id"])
    assert len(ds.manifest) == len(raws) - 1
    ignored = json.loads((ds.root / "dataset.json").read_text())["ignored_files"]
    assert any(i.startswith("NotThreats/2020_1.xif: high-energy image") for i in ignored)
    with pytest.raises(DatasetImportError, match=r"Kopya.tif: name ends in none of"):
        run(src, tmp_path / "b", "importer.incomplete=skip", "importer.unmatched=error")
    with pytest.raises(DatasetImportError, match=r"importer.folders: \['Nope'\] not found"):
        run(src, tmp_path / "c", "importer.folders=[HighLow, Nope]")


def test_suffixes_are_configurable_and_png_pairs_work(tmp_path):
    src = tmp_path / "src" / "bags"
    src.mkdir(parents=True)
    lo = np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 500
    Image.fromarray(lo).save(src / "scan7-LE.png")
    Image.fromarray(lo[::-1].copy()).save(src / "scan7-HE.png")
    cfg = compose("import", ["importer=dual_energy", f"importer.source={tmp_path / 'src'}",
                             "importer.low_suffix=-LE", "importer.high_suffix=-HE",
                             "importer.class_map={bags: null}", f"importer.out={tmp_path / 'o'}"])
    ds = read_dataset(import_dataset(cfg))
    (row,) = ds.manifest.to_dict("records")
    assert row["item_id"] == "dual_energy/bags/scan7"
    assert (ds.root / row["image"]).read_bytes() == (src / "scan7-LE.png").read_bytes()
    assert np.array_equal(np.asarray(Image.open(ds.root / row["raw"])), np.vstack([lo, lo[::-1]]))
    assert row["no_threat"] == 0  # complete_labels defaults to false: no claim
