"""The localisation head (atr/models/localisation_head.py): it leaves the classifier's
outputs as they are, learns from box masks only where they are valid, and its `heatmap`
output exports to ONNX with parity, turned back per test-time view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from atr.data.box_masks import box_targets, class_masks
from atr.models.localisation_head import localisation_loss
from atr.models.onnx_export import export_onnx
from atr.models.screening_module import ScreeningModule
from atr.package.preprocess import PreprocessSpec
from atr.policy.taxonomy import default_taxonomy

SIZE = 64  # stride 16: a 4 x 4 grid


@pytest.fixture(scope="module")
def model() -> ScreeningModule:
    torch.manual_seed(0)
    return ScreeningModule(default_taxonomy().model_outputs, input_size=SIZE,
                           localisation_weight=0.5).eval()


def test_head_beside_the_classifier(model: ScreeningModule) -> None:
    threats = default_taxonomy().threats
    assert model.localises and model.localisation_classes == threats
    assert model.heatmap_grid == (SIZE // 16, SIZE // 16)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        logits, emb, heat = model.forward_localised(x)
        plain_logits, plain_emb = model(x)
    assert heat.shape == (2, len(threats), 4, 4)
    torch.testing.assert_close(logits, plain_logits)
    torch.testing.assert_close(emb, plain_emb)
    assert not ScreeningModule(default_taxonomy().model_outputs, input_size=SIZE).localises


def test_tiles_maps_are_stitched_onto_the_canvas(tmp_path: Path) -> None:
    """2 x 2 tiles of 32 px on a 64 px canvas: each tile's 2 x 2 map lands on its own
    quarter of the canvas's 4 x 4 grid; scores stay the tiled classifier's, and the
    stitched map exports into the ONNX graph."""
    torch.manual_seed(0)
    tiled = ScreeningModule(default_taxonomy().model_outputs, input_size=SIZE, tile_grid=2,
                            tile_size=32, localisation_weight=0.5).eval()
    assert tiled.localises and tiled.heatmap_grid == (4, 4)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        logits, emb, heat = tiled.forward_localised(x)
        plain_logits, plain_emb = tiled(x)
        fine = tiled.backbone.forward_intermediates(x[:, :, 32:, :32], indices=[
            tiled._fine_index])
        own = tiled.loc_head(fine[1][0], fine[0])  # the bottom-left tile on its own
    torch.testing.assert_close(logits, plain_logits)
    torch.testing.assert_close(emb, plain_emb)
    assert heat.shape == (2, len(tiled.localisation_classes), 4, 4)
    torch.testing.assert_close(heat[:, :, 2:, :2], own)  # no overlap: the tile's own map
    path = export_onnx(tiled, tmp_path / "tiled.onnx", SIZE, views=("identity",))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    _, _, onnx_heat = session.run(None, {"image": x.numpy()})
    np.testing.assert_allclose(onnx_heat, torch.sigmoid(heat).numpy(), atol=1e-5)
    for grid, size, why in ((2, 40, "model.tiles.size 40"), (3, 48, "stride 8")):
        with pytest.raises(ValueError, match=f"{why} is not a multiple of the heat-map"):
            ScreeningModule(default_taxonomy().model_outputs, input_size=SIZE, tile_grid=grid,
                            tile_size=size, localisation_weight=0.5)


def test_loss_counts_only_valid_pairs() -> None:
    logits = torch.zeros(2, 3, 4, 4, requires_grad=True)
    target = torch.ones(2, 3, 4, 4)
    none = localisation_loss(logits, target, torch.zeros(2, 3))
    assert none.item() == 0.0
    none.backward()  # the graph is kept for a batch without boxes
    one = localisation_loss(logits, target, torch.tensor([[1.0, 0, 0], [0, 0, 0]]))
    assert one.item() == pytest.approx(float(np.log(2)), rel=1e-5)


def test_box_targets_follow_the_letterbox() -> None:
    # A 64 x 128 scan letterboxed to 64: y offset 16, scale 0.5; a knife box at scan
    # x 0..64, y 0..64 -> canvas x 0..32, y 16..48 -> cells cols 0-1, rows 1-2 (of 4).
    pre = PreprocessSpec(input_size=64)
    mask = class_masks('[{"label": "knife", "xyxy": [0, 0, 64, 64]},'
                       ' {"label": "book", "xyxy": [0, 0, 10, 10]}]', ["knife", "firearm"],
                       64, 128)
    cells, valid = box_targets(mask, np.array([1.0, 0.0], np.float32), pre, (4, 4))
    assert cells[0].tolist() == [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    assert not cells[1].any() and valid.tolist() == [1.0, 1.0]
    # a positive class without a box teaches nothing; an absent class is a cold map
    _, valid = box_targets(mask * 0, np.array([1.0, 0.0], np.float32), pre, (4, 4))
    assert valid.tolist() == [0.0, 1.0]


def test_training_step_uses_the_box_masks(model: ScreeningModule) -> None:
    train = ScreeningModule(default_taxonomy().model_outputs, input_size=SIZE,
                            localisation_weight=0.5).train()
    k = len(train.localisation_classes)
    image, target = torch.randn(4, 3, SIZE, SIZE), torch.zeros(4, k + 1)
    cells = torch.zeros(4, k, 4, 4)
    loss = train.training_step((image, target, cells, torch.ones(4, k)), 0)
    loss.backward()
    assert train.loc_head.out.weight.grad.abs().sum() > 0
    train.zero_grad()
    train.training_step((image, target), 0).backward()  # no masks: the head gets nothing
    assert train.loc_head.out.weight.grad is None or not train.loc_head.out.weight.grad.any()


def test_export_heatmap_parity_and_views(model: ScreeningModule, tmp_path: Path) -> None:
    path = export_onnx(model, tmp_path / "m.onnx", SIZE, views=("identity", "hflip"))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["scores", "embedding", "heatmap"]
    x = np.random.default_rng(0).normal(size=(2, 3, SIZE, SIZE)).astype(np.float32)
    scores, _, heat = session.run(None, {"image": x})
    assert heat.shape == (2, len(model.localisation_classes), 4, 4)
    # identity + hflip, each view's map turned back: the flipped image gets the mirrored map
    _, _, heat_flipped = session.run(None, {"image": x[..., ::-1].copy()})
    np.testing.assert_allclose(heat_flipped, heat[..., ::-1], atol=1e-5)
    plain = export_onnx(ScreeningModule(default_taxonomy().model_outputs, input_size=SIZE),
                        tmp_path / "plain.onnx", SIZE)
    names = [o.name for o in ort.InferenceSession(str(plain)).get_outputs()]
    assert names == ["scores", "embedding"]  # weight 0: the contract as before


def test_warm_start_across_the_head(tmp_path: Path) -> None:
    """A champion trained before the head fine-tunes into a model with it (the head starts
    fresh), and a checkpoint with a head loads into a model without one."""
    from atr.models.warm_start import load_init_weights

    outputs = default_taxonomy().model_outputs
    old = ScreeningModule(outputs, input_size=SIZE)
    torch.save({"state_dict": old.state_dict()}, tmp_path / "old.ckpt")
    new = ScreeningModule(outputs, input_size=SIZE, localisation_weight=0.5)
    head = new.loc_head.out.weight.clone()
    load_init_weights(new, tmp_path / "old.ckpt", "old")
    torch.testing.assert_close(new.head[1].weight, old.head[1].weight)
    torch.testing.assert_close(new.loc_head.out.weight, head)
    torch.save({"state_dict": new.state_dict()}, tmp_path / "new.ckpt")
    load_init_weights(ScreeningModule(outputs, input_size=SIZE), tmp_path / "new.ckpt", "new")
