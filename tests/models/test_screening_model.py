"""Screening model: shapes, loss weighting, backbone errors, ONNX export parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from atr.data.datamodule import pos_weight_from
from atr.models.backbones import UnknownBackboneError, create_backbone
from atr.models.onnx_export import export_onnx
from atr.models.screening_module import ScreeningModule
from atr.models.test_time_views import check_views
from atr.policy.taxonomy import default_taxonomy

SIZE = 64


@pytest.fixture(scope="module")
def model() -> ScreeningModule:
    torch.manual_seed(0)
    return ScreeningModule(default_taxonomy().model_outputs, input_size=SIZE).eval()


def test_forward_returns_logits_and_embedding(model: ScreeningModule) -> None:
    outputs = default_taxonomy().model_outputs
    assert outputs[0] == "paper_only"
    logits, embedding = model(torch.randn(3, 3, SIZE, SIZE))
    assert logits.shape == (3, len(outputs))
    assert embedding.shape == (3, model.embedding_dim) and model.embedding_dim > 0


def test_pos_weight_balances_each_output() -> None:
    targets = np.array([[1, 0], [0, 0], [0, 0], [0, 0]], np.float32)
    np.testing.assert_allclose(pos_weight_from(targets, cap=50.0), [3.0, 1.0])
    rare = np.zeros((1000, 1), np.float32)
    rare[0] = 1
    assert pos_weight_from(rare, cap=50.0)[0] == 50.0  # capped: one sample must not dominate


def test_pos_weight_reaches_the_loss() -> None:
    logits, target = torch.zeros(4, 2), torch.tensor([[1.0, 0], [0, 0], [0, 0], [0, 0]])
    plain = ScreeningModule(["paper_only", "knife"], input_size=SIZE)._loss(logits, target)
    weighted = ScreeningModule(["paper_only", "knife"], input_size=SIZE, pos_weight=[3.0, 1.0])
    assert weighted._loss(logits, target) > plain


def test_hard_negative_loss_targets_the_top_paper_scores_of_non_paper_items() -> None:
    outputs = ["paper_only", "knife"]
    # rows 0-1 paper-only; rows 2-5 non-paper with rising paper_only logits
    logits = torch.tensor([[5.0, -5], [4, -5], [-4, -5], [-2, -5], [0, -5], [3, -5]])
    target = torch.tensor([[1.0, 0], [1, 0], [0, 0], [0, 0], [0, 0], [0, 0]])
    plain = ScreeningModule(outputs, input_size=SIZE)
    mined = ScreeningModule(outputs, input_size=SIZE, hard_negative_weight=2.0,
                            hard_negative_fraction=0.25)
    # 25 % of 4 negatives = the single hardest one (logit 3): + 2 * softplus(3)
    extra = mined._loss(logits, target) - plain._loss(logits, target)
    softplus3 = torch.nn.functional.softplus(torch.tensor(3.0)).item()
    assert extra.item() == pytest.approx(2.0 * softplus3)
    # its gradient reaches only that item's paper_only logit
    logits = logits.clone().requires_grad_(True)
    (mined._loss(logits, target) - plain._loss(logits, target)).backward()
    grad = logits.grad
    assert grad[5, 0] > 0 and torch.count_nonzero(grad).item() == 1
    # a batch without non-paper items adds nothing
    only_paper, head = torch.ones(2, 2), logits[:2].detach()
    assert mined._loss(head, only_paper) == plain._loss(head, only_paper)


def test_hard_negative_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="hard_negative"):
        ScreeningModule(["paper_only"], input_size=SIZE, hard_negative_fraction=0.0)
    with pytest.raises(ValueError, match="hard_negative"):
        ScreeningModule(["paper_only"], input_size=SIZE, hard_negative_weight=-1.0)


def test_unknown_backbone_says_how_to_list_names() -> None:
    with pytest.raises(UnknownBackboneError, match="timm.list_models") as err:
        create_backbone("mobilenet_v9_tiny")
    assert "mobilenet_v9_tiny" in str(err.value)


def _expected(model: ScreeningModule, x: torch.Tensor, views: list[str]) -> tuple:
    """Per view by hand (torch.flip on the input), then the mean: independent of the wrapper."""
    dims = {"identity": (), "hflip": (3,), "vflip": (2,), "rot180": (2, 3)}
    scores, embeddings = [], []
    with torch.no_grad():
        for v in views:
            logits, emb = model(torch.flip(x, dims=dims[v]) if dims[v] else x)
            scores.append(torch.sigmoid(logits))
            embeddings.append(emb)
    return torch.stack(scores).mean(0).numpy(), torch.stack(embeddings).mean(0).numpy()


@pytest.mark.parametrize("views", [["identity"], ["identity", "hflip", "vflip", "rot180"]])
def test_onnx_export_matches_torch(model: ScreeningModule, tmp_path: Path,
                                   views: list[str]) -> None:
    path = export_onnx(model, tmp_path / "model.onnx", SIZE, views=views)
    graph = onnx.load(str(path))
    assert max(op.version for op in graph.opset_import if op.domain in ("", "ai.onnx")) >= 17
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["scores", "embedding"]
    for batch in (1, 5):  # the batch axis is dynamic
        x = torch.randn(batch, 3, SIZE, SIZE)
        scores, embedding = session.run(None, {"image": x.numpy()})
        want_scores, want_embedding = _expected(model, x, views)
        assert scores.shape == (batch, len(model.outputs))
        assert ((scores >= 0) & (scores <= 1)).all()  # probabilities, not logits
        np.testing.assert_allclose(scores, want_scores, atol=1e-4)
        np.testing.assert_allclose(embedding, want_embedding, atol=1e-4)


def test_four_flip_views_make_the_score_flip_invariant(model: ScreeningModule,
                                                       tmp_path: Path) -> None:
    # The four flips are a group: a flipped bag gets the same score, as it should on a belt.
    four = export_onnx(model, tmp_path / "four.onnx", SIZE,
                       views=["identity", "hflip", "vflip", "rot180"])
    one = export_onnx(model, tmp_path / "one.onnx", SIZE)
    x = torch.randn(3, 3, SIZE, SIZE)
    flipped = torch.flip(x, dims=(3,))
    run = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (four, one)]
    s4, s4f = (run[0].run(["scores"], {"image": t.numpy()})[0] for t in (x, flipped))
    s1, s1f = (run[1].run(["scores"], {"image": t.numpy()})[0] for t in (x, flipped))
    # An untrained net scores everything near 0.5, so compare the two deviations: a single
    # view is not invariant (the test has teeth), the four-view mean is, to float rounding.
    assert np.abs(s4 - s4f).max() < np.abs(s1 - s1f).max() / 20


@pytest.mark.parametrize(("views", "message"), [
    ([], "empty"), (["identity", "rot90"], "unknown view"), (["hflip", "hflip"], "repeats"),
])
def test_bad_test_time_views_are_refused(views: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_views(views)


def test_export_leaves_the_training_module_alone(tmp_path: Path) -> None:
    net = ScreeningModule(["paper_only", "knife"], input_size=SIZE).train()
    export_onnx(net, tmp_path / "m.onnx", SIZE)
    assert net.training and next(net.parameters()).requires_grad
