"""Tiles inside the model: per-class pooling, and the exported ONNX graph does the same."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from atr.models.onnx_export import export_onnx
from atr.models.screening_module import ScreeningModule
from atr.models.tiling import TileGrid, cut_tiles, pool_tiles

OUTPUTS = ["paper_only", "knife", "firearm"]


def test_tile_grid_covers_the_canvas_with_overlap() -> None:
    grid = TileGrid(grid=3, size=64, canvas=160)
    assert grid.stride == 48
    assert grid.origins()[-1] == (96, 96)  # the last tile ends at the canvas edge
    assert 96 + 64 == 160
    with pytest.raises(ValueError, match="divisible"):
        TileGrid(grid=3, size=65, canvas=160)
    with pytest.raises(ValueError, match="gaps"):
        TileGrid(grid=2, size=40, canvas=100)
    with pytest.raises(ValueError, match="unknown key"):
        TileGrid.from_config({"grid": 2, "sise": 64}, 128)


def test_threats_take_the_max_and_low_risk_the_min_over_tiles() -> None:
    n_tiles, n = 4, 2
    logits = torch.zeros(n_tiles * n, 3)
    logits[1 * n + 0, 1] = 5.0   # image 0: a knife in tile 1 only
    logits[3 * n + 1, 0] = -4.0  # image 1: tile 3 is not low risk
    logits[:, 0] += 2.0          # every other tile looks low risk
    pooled, emb = pool_tiles(logits, torch.ones(n_tiles * n, 5), n_tiles)
    assert pooled[0, 1] == 5.0 and pooled[1, 1] == 0.0
    assert pooled[1, 0] == -2.0 and pooled[0, 0] == 2.0  # one bad tile decides low risk
    assert torch.allclose(emb, torch.ones(n, 5))


def test_cut_tiles_is_tile_major() -> None:
    image = torch.arange(2 * 1 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    tiles = cut_tiles(image, TileGrid(grid=2, size=8, canvas=16))
    assert tiles.shape == (8, 1, 8, 8)
    assert torch.equal(tiles[1], image[1, :, :8, :8])   # tile 0 of image 1
    assert torch.equal(tiles[7], image[1, :, 8:, 8:])   # tile 3 of image 1


def test_tiled_model_exports_the_tiling_into_onnx(tmp_path) -> None:
    torch.manual_seed(0)
    model = ScreeningModule(OUTPUTS, backbone="mobilenetv3_small_100", input_size=96,
                            tile_grid=2, tile_size=64, channels_last=False).eval()
    with torch.no_grad():  # a random head gives ~0.5 everywhere: make scores input-dependent
        model.head[1].weight.normal_(0.0, 500.0, generator=torch.Generator().manual_seed(2))
    path = export_onnx(model, tmp_path / "model.onnx", 96, views=["identity", "hflip"])
    x = torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scores, emb = session.run(["scores", "embedding"], {"image": x.numpy()})
    with torch.no_grad():
        views = [x, torch.flip(x, dims=(3,))]
        expected = []
        for v in views:
            tiles = cut_tiles(v, model.tiles)  # by hand: backbone per tile, then pool
            feats = model.backbone(tiles)
            logits, _ = pool_tiles(model.head(feats), feats, 4)
            expected.append(torch.sigmoid(logits))
    np.testing.assert_allclose(scores, (sum(expected) / 2).numpy(), atol=1e-4)
    assert emb.shape == (3, model.embedding_dim)
    # the graph takes the whole canvas: the same weights without tiles score differently
    single = ScreeningModule(OUTPUTS, backbone="mobilenetv3_small_100", input_size=96,
                             channels_last=False).eval()
    single.load_state_dict(model.state_dict())
    with torch.no_grad():
        plain = sum(torch.sigmoid(single(v)[0]) for v in views).numpy() / 2
    assert np.abs(plain - scores).max() > 1e-2
