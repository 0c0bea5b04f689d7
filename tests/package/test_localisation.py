"""Heat-map -> boxes and peak in the ORIGINAL image's pixels (atr.package.localisation),
through each resize mode of the package's preprocessing; and the scorer's optional
`heatmap` output (a package without one keeps working)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.packages import TINY_GRID, build_package

from atr.package.layout import PackageError
from atr.package.localisation import LocalisationSpec, localise
from atr.package.onnx_scorer import load_scorer
from atr.package.preprocess import PreprocessSpec

CLASSES = ("knife", "firearm")
SPEC = LocalisationSpec(classes=CLASSES, grid=(8, 8))


def _plateau(rows: slice, cols: slice, value: float = 0.9, k: int = 0) -> np.ndarray:
    heat = np.zeros((len(CLASSES), 8, 8), np.float32)
    heat[k, rows, cols] = value
    return heat


def test_letterbox_box_maps_back_to_the_scan() -> None:
    # 200 x 100 scan letterboxed into 32 px: scale 0.16, 32 x 16 at y offset 8; a cell is
    # 4 canvas px. Cells rows 3-4, cols 2-4 = canvas x 8..20, y 12..20 = scan x 50..125,
    # y 25..75.
    pre = PreprocessSpec(input_size=32, resize="letterbox")
    out = localise(_plateau(slice(3, 5), slice(2, 5)), SPEC, pre, height=100, width=200)
    (box,) = out["boxes"]
    assert box["label"] == "knife" and box["score"] == pytest.approx(0.9, abs=1e-3)
    tol = 1 / 0.16 + 0.1  # one canvas pixel: the upsampled map's step
    assert box["xyxy"] == pytest.approx([50, 25, 125, 75], abs=tol)
    x, y = out["peak"]["xy"]
    assert out["peak"]["label"] == "knife" and 50 <= x <= 125 and 25 <= y <= 75


def test_pitch_and_stretch_geometry() -> None:
    # pitch 1: a 16 x 16 scan sits unscaled in the middle of the 32 px canvas (offset 8);
    # cells 2-3 = canvas 8..16 = scan 0..8.
    pitch = PreprocessSpec(input_size=32, resize="pitch", pixel_scale=1.0)
    (box,) = localise(_plateau(slice(2, 4), slice(2, 4)), SPEC, pitch, 16, 16)["boxes"]
    assert box["xyxy"] == pytest.approx([0, 0, 8, 8], abs=1.1)
    # stretch: a 64 x 320 scan, x scaled by 10, y by 2: cells 0-1 = canvas 0..8.
    stretch = PreprocessSpec(input_size=32, resize="stretch")
    (box,) = localise(_plateau(slice(0, 2), slice(0, 2)), SPEC, stretch, 64, 320)["boxes"]
    assert box["xyxy"] == pytest.approx([0, 0, 80, 16], abs=10.1)


def test_blobs_classes_and_floor() -> None:
    heat = _plateau(slice(0, 2), slice(0, 2), 0.8) + _plateau(slice(5, 7), slice(5, 7), 0.6)
    heat[1] = 0.05  # the second class never reaches min_score: no box, not the peak
    pre = PreprocessSpec(input_size=32)
    out = localise(heat, SPEC, pre, 32, 32)
    assert [b["label"] for b in out["boxes"]] == ["knife", "knife"]
    assert [b["score"] for b in out["boxes"]] == pytest.approx([0.8, 0.6], abs=1e-3)
    assert out["peak"]["label"] == "knife" and out["peak"]["xy"][0] < 8
    cold = localise(np.full((2, 8, 8), 0.01, np.float32), SPEC, pre, 32, 32)
    assert cold["boxes"] == [] and cold["peak"]["score"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="3 classes|2 classes"):
        localise(np.zeros((3, 8, 8), np.float32), SPEC, pre, 32, 32)


def test_spec_round_trip_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "localisation.json"
    path.write_text(SPEC.to_json())
    assert LocalisationSpec.load(path) == SPEC
    path.write_text('{"classes": ["knife"], "grid": [8, 8], "colour": "red"}')
    with pytest.raises(ValueError, match="colour"):
        LocalisationSpec.load(path)


def test_scorer_returns_the_heatmap_of_the_same_pass(tmp_path: Path) -> None:
    package = build_package(tmp_path / "loc", localisation=True)
    scorer = load_scorer(package)
    assert scorer.localisation is not None and scorer.localisation.grid == TINY_GRID
    images = [np.random.default_rng(i).integers(0, 255, (40, 24, 3), np.uint8) for i in range(3)]
    scores, emb, heat = scorer.score_images_localised(images)
    plain_scores, plain_emb = scorer.score_images(images)
    np.testing.assert_allclose(scores, plain_scores, atol=1e-6)
    np.testing.assert_allclose(emb, plain_emb, atol=1e-6)
    assert heat.shape == (3, len(scorer.taxonomy.threats), *TINY_GRID)
    assert ((heat >= 0) & (heat <= 1)).all()
    # The spec without the output it describes is refused, naming the file.
    plain = build_package(tmp_path / "plain")
    assert load_scorer(plain).localisation is None
    assert load_scorer(plain).score_images_localised(images)[2] is None
    (plain / "localisation.json").write_text((package / "localisation.json").read_text())
    with pytest.raises(PackageError, match="localisation.json"):
        load_scorer(plain)
