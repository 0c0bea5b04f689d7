"""Frontline batches of a dual-energy model keep the low/high pair in `raw`.

A real MLflow SQLite registry holds a dual-energy and a pseudo-colour version of the tiny
ONNX package (tests/helpers/packages.py); predictions name those versions, decided as the
service would (their policy on the scores); `atr labels batch` (labels_job.batch) must write
each upload the way its deciding model reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from helpers.decisions import as_response, assert_policy_decision
from helpers.images import two_page_tiff
from helpers.packages import build_package
from helpers.registry import NAME, Registry, registry_at
from labels_fixtures import CONFIDENT, Line
from PIL import Image
from sqlalchemy import select, update

from atr.config import compose
from atr.data.dataset_writer import encode_png
from atr.data.manifest import read_dataset
from atr.labels import job as labels_job
from atr.labels.frontline_batch import write_frontline_batch
from atr.labels.frontline_images import ModelSpecUnavailable, RegistrySpecs
from atr.package.dual_energy import attenuation
from atr.package.preprocess import PreprocessSpec
from atr.policy.decision import Policy
from atr.store.image_store import ImageStore
from atr.store.prediction_store import Feedback, Prediction, ensure_store

PAPER = {"document": 1, "paper_only": 1}
DUAL = PreprocessSpec(representation="dual_energy")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Version 1: a dual-energy package; version 2: a pseudo-colour one."""
    root = tmp_path_factory.mktemp("runtime")
    reg = registry_at(root)
    pkgs = tmp_path_factory.mktemp("packages")
    dual = build_package(pkgs / "dual", seed=0, representation="dual_energy")
    pseudo = build_package(pkgs / "pseudo", seed=1)
    versions = {"dual": reg.register(dual), "pseudo": reg.register(pseudo)}
    return {"root": root, "reg": reg, "dual_pkg": dual, **versions}


def _pair(seed: int, h: int = 12, w: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    low = rng.integers(8_000, 50_000, (h, w), dtype=np.uint16)
    high = rng.integers(15_000, 60_000, (h, w), dtype=np.uint16)
    low[:, :3], high[:, :3] = 50_000, 60_000  # a strip of air, as around a parcel
    return low, high


def _decide(line: Line, item: str, data: bytes, version: str,
            reg: Registry | None = None) -> str:
    """Store the upload's prediction as version `version` would have decided it: for a
    version `reg` holds, its policy's decision of the scores (as the service stores it)."""
    decision = "CLEAR"
    policy = None
    if reg is not None and version in reg.packages:
        policy = Policy.from_dict(reg.policy_json(version))
        decision = str(policy.decide([[CONFIDENT[o] for o in policy.outputs]])[0][0])
    p = line.decide(item, image=data, decision=decision)
    with line.sessions.begin() as s:
        s.execute(update(Prediction).where(Prediction.id == p.id)
                  .values(model_version=version))
        stored = s.get(Prediction, p.id)
        row = {c: getattr(stored, c) for c in
               ("decision", "reason", "scores", "model_name", "model_version")}
    if policy is not None:
        assert_policy_decision(as_response(row), policy)
    line.verdict(item, PAPER)
    return str(p.image_ref)


def test_dual_energy_uploads_become_raw_pairs(registry, tmp_path: Path, taxonomy) -> None:
    cfg = compose("labels", [f"paths.root={registry['root']}", f"paths.data_dir={tmp_path}",
                             f"paths.prediction_db=sqlite:///{tmp_path / 'p.db'}",
                             f"paths.image_store={tmp_path / 'images'}"])
    line = Line(ensure_store(cfg.paths.prediction_db), ImageStore(cfg.paths.image_store))
    dual, pseudo = str(registry["dual"]), str(registry["pseudo"])
    pairs = {"pair-png": _pair(1), "pair-tiff": _pair(2)}
    uploads = {
        "pair-png": (encode_png(np.vstack(pairs["pair-png"])), dual),
        "pair-tiff": (two_page_tiff(*pairs["pair-tiff"]), dual),
        # a single-energy 16-bit grey scan of even height: a pair by its bytes, not its model
        "grey16": (encode_png(np.vstack(_pair(3))), pseudo),
        "rgb": (encode_png(np.full((8, 6, 3), 200, np.uint8)), "3"),  # never looked up
        "unknown": (encode_png(np.vstack(_pair(4))), "99"),  # version not in the registry
        "truncated": (encode_png(np.vstack(_pair(5)))[:120], dual),
    }
    refs = {item: _decide(line, item, data, v, registry["reg"])
            for item, (data, v) in uploads.items()}

    done = labels_job.batch(cfg)
    assert done["items"] == 4
    assert set(done["skipped"]) == {"unknown", "truncated"}
    assert "v99" in done["skipped"]["unknown"] and "could be a dual-energy pair" in (
        done["skipped"]["unknown"])
    assert "not a readable dual-energy pair" in done["skipped"]["truncated"]
    root = Path(done["batch"])
    m = read_dataset(root, taxonomy).manifest.set_index("item_id")
    metas = {k: json.loads(m.loc[k, "meta"]) for k in m.index}
    spec = PreprocessSpec.load(Path(registry["dual_pkg"]) / "preprocess.json")
    for item, (low, high) in pairs.items():
        raw = np.asarray(Image.open(root / m.loc[item, "raw"]))
        assert raw.dtype == np.uint16 and np.array_equal(raw, np.vstack([low, high]))
        with Image.open(root / m.loc[item, "image"]) as img:  # displayable: 8-bit, H x W
            assert img.mode == "RGB" and img.size == (10, 12)
            picture = np.asarray(img)
        pair = np.stack([low, high], axis=-1)
        assert np.array_equal(picture, spec.display(attenuation(pair, spec.air_level)))
        assert (m.loc[item, "width"], m.loc[item, "height"]) == (10, 12)
        original = line.images.get(refs[item])
        assert np.array_equal(DUAL.decode(root / m.loc[item, "raw"]), DUAL.decode(original))
        assert metas[item]["image_ref"] == refs[item]
        assert metas[item]["representation"] == "dual_energy"
    for item in ("grey16", "rgb"):  # as uploaded, byte for byte
        assert m.loc[item, "raw"] is None
        assert (root / m.loc[item, "image"]).read_bytes() == uploads[item][0]
        assert "representation" not in metas[item]
    with line.sessions() as s:
        waiting = set(s.scalars(select(Feedback.item_id).where(Feedback.batch.is_(None))))
    assert waiting == {"unknown", "truncated"}  # their feedback waits for a later run


def test_without_a_registry_possible_pairs_wait(line: Line, sessions, images, taxonomy,
                                                tmp_path: Path) -> None:
    _decide(line, "grey16", encode_png(np.vstack(_pair(6))), "1")
    _decide(line, "rgb", encode_png(np.full((8, 6, 3), 90, np.uint8)), "1")
    res = write_frontline_batch(sessions, images, taxonomy, tmp_path / "fl")
    assert res.items == 1 and list(res.skipped) == ["grey16"]
    assert "no model registry" in res.skipped["grey16"]


def test_registry_lookup_checks_the_spec_against_its_tag(registry) -> None:
    reg = registry["reg"]
    specs = RegistrySpecs(reg.tracking_uri)
    assert specs(NAME, str(registry["dual"])).dual_energy
    assert not specs(NAME, str(registry["pseudo"])).dual_energy
    with pytest.raises(ModelSpecUnavailable, match="v99"):
        specs(NAME, "99")
    # a preprocess.json altered after registration is refused, never trusted
    uri = reg.client().get_model_version_download_uri(NAME, str(registry["pseudo"]))
    stored = Path(urlparse(uri).path) / "artifacts" / "package" / "preprocess.json"
    text = stored.read_text()
    try:
        stored.write_text(text.replace("pseudo_colour", "dual_energy"))
        with pytest.raises(ModelSpecUnavailable, match="sha256"):
            RegistrySpecs(reg.tracking_uri)(NAME, str(registry["pseudo"]))
    finally:
        stored.write_text(text)
