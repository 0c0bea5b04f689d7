"""OnnxScorer on a real exported package: shapes, output order, batching, bad packages.
(Package as `atr train` leaves it, from helpers.packages: no policy.json yet.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.packages import build_package

from atr.package.image_stats import STAT_NAMES, image_stats
from atr.package.onnx_scorer import OnnxScorer, PackageError
from atr.package.preprocess import decode_image
from atr.policy.taxonomy import default_taxonomy


@pytest.fixture(scope="module")
def pristine_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_package(tmp_path_factory.mktemp("pkg") / "model", evaluated=False)


@pytest.fixture
def package(pristine_package: Path, tmp_path: Path) -> Path:
    """A private copy: tests that corrupt it do not touch the others."""
    return Path(shutil.copytree(pristine_package, tmp_path / "model"))


def _paths(dataset: Path, n: int) -> list[Path]:
    return sorted(p for p in (dataset / "batch-00000").glob("*.png") if ".raw." not in p.name)[:n]


def _images(dataset: Path, n: int) -> list[np.ndarray]:
    return [decode_image(p) for p in _paths(dataset, n)]


def test_scores_shapes_and_output_order(pristine_package: Path, tiny_dataset: Path) -> None:
    scorer = OnnxScorer(pristine_package, intra_op_threads=1)
    assert scorer.outputs == default_taxonomy().model_outputs
    scores, emb = scorer.score_images(_images(tiny_dataset, 5))
    assert scores.shape == (5, len(scorer.outputs)) and scores.dtype == np.float32
    assert scorer.embedding_dim == 8  # the fixture network's width, read from the graph
    assert emb.shape == (5, 8)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scorer.policy is None  # not calibrated yet


def test_matches_torch_in_taxonomy_order(pristine_package: Path, tiny_dataset: Path) -> None:
    """Column j of the ONNX scores is sigmoid(logit j) of the same network run in torch."""
    import onnx
    import torch
    from onnx import numpy_helper

    scorer = OnnxScorer(pristine_package)
    images = _images(tiny_dataset, 3)
    weights = {t.name: numpy_helper.to_array(t).copy()
               for t in onnx.load(str(pristine_package / "model.onnx")).graph.initializer}
    conv_w = next(w for w in weights.values() if w.ndim == 4)
    conv_b = next(w for w in weights.values() if w.shape == (conv_w.shape[0],))
    head_w = next(w for w in weights.values() if w.ndim == 2)
    head_b = next(w for w in weights.values() if w.shape == (head_w.shape[0],))
    x = torch.from_numpy(scorer.preprocess.prepare_batch(images))
    emb = torch.relu(torch.nn.functional.conv2d(x, torch.from_numpy(conv_w),
                                                torch.from_numpy(conv_b), stride=2)).mean((2, 3))
    expected = torch.sigmoid(emb @ torch.from_numpy(head_w).T + torch.from_numpy(head_b))
    scores, got_emb = scorer.score_images(images)
    np.testing.assert_allclose(scores, expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(got_emb, emb.numpy(), atol=1e-5)


def test_batch_of_one_equals_batch_of_n(pristine_package: Path, tiny_dataset: Path) -> None:
    scorer = OnnxScorer(pristine_package)
    paths = _paths(tiny_dataset, 7)
    together, emb_together = scorer.score_paths(paths, batch_size=7)
    one_by_one, emb_one = scorer.score_paths(paths, batch_size=1)
    uneven, _ = scorer.score_paths(paths, batch_size=3)
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    np.testing.assert_allclose(emb_together, emb_one, atol=1e-6)
    np.testing.assert_allclose(together, uneven, atol=1e-6)
    empty, empty_emb = scorer.score_paths([], batch_size=4)
    assert empty.shape == (0, len(scorer.outputs))


def test_corrupt_model_file_is_named(package: Path) -> None:
    (package / "model.onnx").write_bytes(b"this is not a protobuf")
    with pytest.raises(PackageError, match="model.onnx"):
        OnnxScorer(package)


@pytest.mark.parametrize("missing", ["model.onnx", "preprocess.json", "taxonomy.json"])
def test_missing_file_is_named(package: Path, missing: str) -> None:
    (package / missing).unlink()
    with pytest.raises(PackageError, match=f"{missing}.*missing"):
        OnnxScorer(package)


def test_taxonomy_that_does_not_fit_the_model_is_refused(package: Path) -> None:
    tax = json.loads((package / "taxonomy.json").read_text())
    tax["classes"] = [c for c in tax["classes"] if c["name"] != "knife"]  # 5 outputs, model has 6
    (package / "taxonomy.json").write_text(json.dumps(tax))
    with pytest.raises(PackageError, match="scores"):
        OnnxScorer(package)


def test_bad_policy_file_is_named(package: Path) -> None:
    (package / "policy.json").write_text("{not json")
    with pytest.raises(PackageError, match="policy.json"):
        OnnxScorer(package)


def test_image_stats_reads_the_colour_convention() -> None:
    white = np.full((50, 60, 3), 255, np.uint8)
    stats = image_stats(white)
    assert set(stats) == set(STAT_NAMES)
    assert stats["object_fraction"] == 0.0 and stats["dark_fraction"] == 0.0
    assert stats["brightness"] == pytest.approx(1.0)

    scene = white.copy()
    scene[:25, :30] = (230, 150, 40)  # organic: orange
    scene[25:, :30] = (20, 40, 150)  # dense metal: dark blue
    stats = image_stats(scene)
    assert stats["object_fraction"] == pytest.approx(0.5)
    assert stats["orange_share"] == pytest.approx(0.5)
    assert stats["blue_share"] == pytest.approx(0.5)
    assert stats["green_share"] == 0.0
    assert stats["dark_fraction"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="RGB"):
        image_stats(np.zeros((4, 4), np.uint8))


def test_score_dataset_rows_and_columns(pristine_package: Path, tiny_dataset: Path) -> None:
    """A simulated dataset scored split by split: manifest order, truth kept, one row each."""
    from atr.evaluation.scoring import load_dataset, score_column, score_dataset, score_matrix

    dataset = load_dataset(tiny_dataset)
    scorer = OnnxScorer(pristine_package)
    frame = score_dataset(scorer, dataset, ["val", "test"], batch_size=16)
    expected = dataset.manifest[dataset.manifest["split"].isin(["val", "test"])]
    assert frame["item_id"].tolist() == expected["item_id"].tolist()
    assert frame["paper_only"].tolist() == expected["paper_only"].tolist()
    assert {score_column(o) for o in scorer.outputs} | set(STAT_NAMES) <= set(frame.columns)
    direct, _ = scorer.score_paths([tiny_dataset / p for p in expected["image"]])
    np.testing.assert_allclose(score_matrix(frame, scorer.outputs), direct, atol=1e-6)
    with pytest.raises(ValueError, match="no rows in split"):
        score_dataset(scorer, dataset, ["nonexistent"])
