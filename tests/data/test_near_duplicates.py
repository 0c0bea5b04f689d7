"""Near-duplicate scans are grouped, distinct parcels are not, and imports split by scene."""

from __future__ import annotations

import io
import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from atr.config import compose
from atr.data.dataset_writer import DatasetWriter
from atr.data.importers import DatasetImportError, import_dataset
from atr.data.manifest import read_dataset
from atr.data.near_duplicates import (
    HashSettings,
    group_near_duplicates,
    hash_image,
    manifest_near_duplicates,
    near_pairs,
)
from atr.data.splits import assign_splits, straddling_groups, with_strata
from atr.data.synth import make_dataset
from atr.package.preprocess import decode_image

AIR = (255, 255, 255)  # pseudo-colour: no attenuation is white


def shifted(a: np.ndarray) -> np.ndarray:  # the bag lies elsewhere on the belt, wider frame
    canvas = np.full((a.shape[0] + 40, a.shape[1] + 30, 3), 255, np.uint8)
    canvas[28:28 + a.shape[0], 6:6 + a.shape[1]] = a
    return canvas


def dimmer(a: np.ndarray) -> np.ndarray:  # a weaker tube / another gain
    return np.asarray(ImageEnhance.Brightness(Image.fromarray(a)).enhance(0.92))


def reencoded(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=70)
    return buf.getvalue()


def mirrored(a: np.ndarray) -> np.ndarray:  # the parcel went through the other way round
    return np.ascontiguousarray(a[:, ::-1])


def quarter_turn(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(a))


def gray16(a: np.ndarray) -> bytes:  # exported as a 16-bit grey image
    buf = io.BytesIO()
    lum = np.asarray(Image.fromarray(a).convert("L")).astype(np.uint16) * 257
    Image.fromarray(lum).save(buf, "PNG")
    return buf.getvalue()


def all_at_once(a: np.ndarray) -> bytes:
    return reencoded(shifted(mirrored(a)))


COPIES = [shifted, dimmer, reencoded, mirrored, quarter_turn, gray16, all_at_once]


def save(path: Path, image: np.ndarray | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, bytes):
        path = path.with_suffix(".jpg" if image[:2] == b"\xff\xd8" else ".png")
        path.write_bytes(image)
    else:
        Image.fromarray(image).save(path.with_suffix(".png"))
        path = path.with_suffix(".png")
    return path


@pytest.fixture(scope="module")
def parcels(tmp_path_factory) -> list[np.ndarray]:
    """Twelve distinct simulated parcels (pseudo-colour RGB)."""
    root = make_dataset(tmp_path_factory.mktemp("sim") / "ds", count=12, image_size=160, seed=7)
    return [decode_image(root / p) for p in read_dataset(root).manifest["image"]]


def planted(folder: Path, parcels: list[np.ndarray]) -> tuple[list[Path], list[set[str]]]:
    """Every parcel once; parcels 0-2 with copies (0: every kind). Returns the files and
    the expected groups (file stems)."""
    paths = [save(folder / f"p{i:02d}", a) for i, a in enumerate(parcels)]
    kinds = {0: COPIES, 1: [shifted, reencoded], 2: [mirrored, dimmer]}
    truth = []
    for i, copies in kinds.items():
        stems = {f"p{i:02d}"}
        for fn in copies:
            paths.append(save(folder / f"p{i:02d}-{fn.__name__}", fn(parcels[i])))
            stems.add(paths[-1].stem)
        truth.append(stems)
    return paths, truth


def partition(paths: list[Path], labels: np.ndarray) -> list[set[str]]:
    groups: dict[int, set[str]] = {}
    for p, label in zip(paths, labels.tolist(), strict=True):
        groups.setdefault(label, set()).add(p.stem)
    return sorted((g for g in groups.values() if len(g) > 1), key=min)


@pytest.mark.parametrize("copy", COPIES, ids=lambda f: f.__name__)
def test_each_kind_of_copy_is_within_the_threshold_of_its_original(parcels, copy):
    s = HashSettings()
    for a in parcels:
        made = copy(a)
        b = decode_image(made) if isinstance(made, bytes) else made
        d = np.bitwise_count(hash_image(a, s)[0][None, :] ^ hash_image(b, s)).sum(-1).min()
        assert d <= s.threshold, (copy.__name__, int(d))


def test_planted_copies_are_grouped_and_distinct_parcels_are_not(parcels, tmp_path):
    paths, truth = planted(tmp_path / "src", parcels)
    found = group_near_duplicates(paths)
    assert partition(paths, found.labels) == truth
    assert (found.groups, found.items_in_groups, found.largest) == (3, 8 + 3 + 3, 8)
    s = found.summary()
    assert s["groups"] == 3 and s["threshold"] == 40 and "phash 256 bit" in s["method"]


def test_grouping_is_deterministic_and_order_free(parcels, tmp_path):
    paths, _ = planted(tmp_path / "src", parcels)
    ids = [p.name for p in paths]
    keys = dict(zip(ids, group_near_duplicates(paths).keys(ids), strict=True))
    order = list(range(len(paths)))
    random.Random(3).shuffle(order)
    again = group_near_duplicates([paths[i] for i in order]).keys([ids[i] for i in order])
    assert dict(zip([ids[i] for i in order], again, strict=True)) == keys
    assert keys["p00-mirrored.png"] == "p00-all_at_once.jpg"  # the smallest id names a scene
    assert keys["p05.png"] == "p05.png"  # a lone parcel keeps its own id


def test_near_pairs_equals_brute_force():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, (60, 5, 2), dtype=np.int64).view(np.uint64)
    for a, b in [(3, 40), (7, 8), (20, 59)]:  # plant close pairs: a few bits flipped
        hashes[b, 2] = hashes[a, 0] ^ np.array([0b1011, 1 << 40], dtype=np.uint64)
    upright = hashes[:, None, None, 0, :]  # item i's view 0 against every view of item j
    bits = np.bitwise_count(upright ^ hashes[None, :, :, :]).sum(-1).min(-1)
    bits = np.minimum(bits, bits.T)
    expect = [(i, j) for i in range(60) for j in range(i + 1, 60) if bits[i, j] <= 10]
    assert [tuple(p) for p in near_pairs(hashes, 10).tolist()] == expect == [(3, 40), (7, 8),
                                                                              (20, 59)]


def test_settings_are_checked():
    assert HashSettings().angles()[:3] == [0.0, 3.0, -3.0] and len(HashSettings().angles()) == 9
    with pytest.raises(ValueError, match="near_duplicates.hash 'md5'"):
        HashSettings(method="md5")
    with pytest.raises(ValueError, match="threshold 200"):
        HashSettings(threshold=200)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['treshold'\]"):
        HashSettings.from_config({"treshold": 3})
    assert HashSettings.from_config({"enabled": True, "hash": "dhash", "threshold": "12"}) == \
        HashSettings(method="dhash", threshold=12)


def test_manifest_helper_lets_an_assembled_set_be_resplit_by_scene(parcels, tmp_path, taxonomy):
    paths, truth = planted(tmp_path / "src", parcels)
    with DatasetWriter(tmp_path / "ds", taxonomy, source="assembled") as w:
        for p in paths:  # a random split per row, as a naive merge of sources would give
            w.add(f"mix/{p.name}", p.read_bytes(), ext=p.suffix, split="train",
                  scanner_id="a", labels={"clothing": 1})
    ds = read_dataset(tmp_path / "ds")
    df = ds.manifest
    groups = manifest_near_duplicates(df, tmp_path / "ds")
    assert groups.groups == 3
    df = df.assign(scene=groups.keys(df["item_id"]))
    split = assign_splits(with_strata(df, taxonomy), {"train": 0.5, "calib": 0.25, "test": 0.25},
                          seed=0, groups="scene")
    assert straddling_groups(df["scene"], split) == []
    assert set(split) == {"train", "calib", "test"}


def _import(src: Path, out: Path, **opts) -> Path:
    return import_dataset({"importer": {"format": "folder", "name": "planted",
                                        "source": str(src), "out": str(out), **opts}})


def test_import_splits_by_scene_and_records_the_groups(parcels, tmp_path, caplog):
    paths, truth = planted(tmp_path / "src" / "clothing", parcels)
    with caplog.at_level(logging.INFO, logger="atr.data.importers.base"):
        out = _import(tmp_path / "src", tmp_path / "out", seed=4)
    info = json.loads((out / "dataset.json").read_text())
    assert info["near_duplicates"] == {"groups": 3, "items_in_groups": 14, "largest": 8,
                                       "threshold": 40,
                                       "method": HashSettings().describe()}
    assert "3 near-duplicate groups found (14 items)" in caplog.text
    m = read_dataset(out).manifest
    stem = m["meta"].map(lambda s: Path(json.loads(s)["original_name"]).stem)
    for group in truth:
        assert m.loc[stem.isin(group), "split"].nunique() == 1, group
    # the same source without scene detection: the copies straddle splits
    plain = _import(tmp_path / "src", tmp_path / "plain", seed=4,
                    near_duplicates={"enabled": False})
    assert json.loads((plain / "dataset.json").read_text())["near_duplicates"] == {
        "enabled": False}
    pm = read_dataset(plain).manifest
    plain_stem = pm["meta"].map(lambda s: Path(json.loads(s)["original_name"]).stem)
    assert pm.loc[plain_stem.isin(truth[0]), "split"].nunique() > 1


def test_a_sources_own_splits_are_kept_and_straddling_groups_reported(parcels, tmp_path,
                                                                      caplog):
    src = tmp_path / "src"
    save(src / "train" / "clothing" / "a", parcels[0])
    save(src / "train" / "clothing" / "b", parcels[1])
    save(src / "test" / "clothing" / "a-rescan", shifted(parcels[0]))  # leaks into test
    with caplog.at_level(logging.WARNING, logger="atr.data.importers.base"):
        out = _import(src, tmp_path / "out", split_dirs=True)
    m = read_dataset(out).manifest.set_index("item_id")
    assert m.loc["planted/test/clothing/a-rescan.png", "split"] == "test"  # kept as given
    info = json.loads((out / "dataset.json").read_text())["near_duplicates"]
    assert info["groups"] == 1 and info["straddling_source_splits"] == 1
    assert "1 near-duplicate group(s) straddle the source's own splits" in caplog.text


def test_near_duplicate_config_composes_and_is_checked(parcels, tmp_path):
    cfg = compose("import", ["importer=folder", "importer.near_duplicates.threshold=0"])
    assert cfg.importer.near_duplicates.threshold == 0 and cfg.importer.near_duplicates.enabled
    save(tmp_path / "src" / "clothing" / "a", parcels[0])
    with pytest.raises(DatasetImportError, match="importer.near_duplicates: unknown key"):
        _import(tmp_path / "src", tmp_path / "out", near_duplicates={"treshold": 3})
    assert not (tmp_path / "out").exists()
