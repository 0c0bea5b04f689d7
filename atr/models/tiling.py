"""Tiles: score a large scan piece by piece, then pool per class.

A real scan is 600-2 700 px wide and a knife covers a few percent of it: shrunk into one
160 px input, the knife is a few pixels. With `model.tiles.grid: g` the model's input is
a canvas of `preprocess.input_size` pixels a side, cut into g x g overlapping tiles of
`model.tiles.size` pixels; the backbone scores each tile, and the tiles' logits are
pooled per output:
  * a threat output takes the MAX over tiles: one tile with a knife is a knife in the bag;
  * the low-risk output (paper_only / no_threat) takes the MIN: the bag is low risk only
    if every tile is. Max-pooling it would let one clean tile clear a bag;
  * the embedding is the mean over tiles.
This is multiple-instance learning with image-level labels: training runs the same
pooling, so the gradient reaches the tile that decided. The slicing is plain tensor
indexing, exported into the ONNX graph: serving feeds the canvas and never knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TileGrid:
    """g x g tiles of `size` px over a square canvas of `canvas` px (overlap implied)."""

    grid: int = 1
    size: int | None = None  # None with grid 1: the tile is the canvas
    canvas: int = 160

    def __post_init__(self) -> None:
        if self.grid < 1:
            raise ValueError(f"model.tiles.grid must be >= 1, got {self.grid}")
        size = self.tile_size
        if not 8 <= size <= self.canvas:
            raise ValueError(
                f"model.tiles.size {size} must lie in [8, preprocess.input_size={self.canvas}]"
            )
        if self.grid > 1 and (self.canvas - size) % (self.grid - 1):
            raise ValueError(
                f"tiles do not fit the canvas evenly: (input_size {self.canvas} - tile {size}) "
                f"must be divisible by grid - 1 = {self.grid - 1}"
            )
        if self.grid > 1 and size * self.grid < self.canvas:
            raise ValueError(
                f"{self.grid}x{self.grid} tiles of {size} px leave gaps in a {self.canvas} px "
                "canvas: raise model.tiles.size"
            )

    @property
    def tile_size(self) -> int:
        return self.canvas if self.size is None else int(self.size)

    @property
    def stride(self) -> int:
        return 0 if self.grid == 1 else (self.canvas - self.tile_size) // (self.grid - 1)

    def origins(self) -> list[tuple[int, int]]:
        """(y, x) of each tile's top-left corner, row by row."""
        steps = [k * self.stride for k in range(self.grid)]
        return [(y, x) for y in steps for x in steps]

    @classmethod
    def from_config(cls, tiles: Mapping[str, Any] | None, canvas: int) -> TileGrid:
        tiles = dict(tiles or {})
        unknown = sorted(set(tiles) - {"grid", "size"})
        if unknown:
            raise ValueError(f"model.tiles: unknown key(s) {unknown}; known: grid, size")
        size = tiles.get("size")
        return cls(grid=int(tiles.get("grid", 1)), size=None if size is None else int(size),
                   canvas=int(canvas))


def cut_tiles(image: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """N x C x S x S canvas -> (T*N) x C x t x t, tile-major (all images' tile 0 first)."""
    t = grid.tile_size
    return torch.cat([image[:, :, y:y + t, x:x + t] for y, x in grid.origins()], dim=0)


def pool_tiles(logits: torch.Tensor, embedding: torch.Tensor, n_tiles: int,
               low_risk_index: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(T*N) x K logits, (T*N) x D embeddings -> N x K pooled logits, N x D mean embedding.

    Slices along the batch axis, not reshapes: the exported graph keeps static widths.
    """
    n = logits.shape[0] // n_tiles
    per_tile = [logits[i * n:(i + 1) * n] for i in range(n_tiles)]
    stacked = torch.stack(per_tile, dim=0)  # T x N x K
    high = stacked.max(dim=0).values
    low = stacked.min(dim=0).values
    k = logits.shape[1]
    take_min = torch.zeros(k, dtype=torch.bool, device=logits.device)
    take_min[low_risk_index] = True
    pooled = torch.where(take_min, low, high)
    emb = sum(embedding[i * n:(i + 1) * n] for i in range(n_tiles)) / n_tiles
    return pooled, emb


# A cell no tile covers would keep this logit (sigmoid ~ 0); TileGrid refuses gaps, so none.
_UNCOVERED = -1.0e4


def stitch_heatmaps(heat: torch.Tensor, grid: TileGrid, reduction: int) -> torch.Tensor:
    """(T*N) x C x h x w tile heat-map logits (tile-major, as cut_tiles) -> N x C x H x W on
    the canvas's grid of `reduction`-px cells, the max where tiles overlap: the threat
    outputs are max-pooled over tiles too, so the map agrees with the score it explains.
    Pads and a max only: it exports into the ONNX graph."""
    n_tiles = len(grid.origins())
    n = heat.shape[0] // n_tiles
    cells = grid.canvas // reduction
    placed = []
    for i, (y, x) in enumerate(grid.origins()):
        tile = heat[i * n:(i + 1) * n]
        top, left = y // reduction, x // reduction
        pad = (left, cells - left - tile.shape[3], top, cells - top - tile.shape[2])
        placed.append(torch.nn.functional.pad(tile, pad, value=_UNCOVERED))
    return torch.stack(placed, dim=0).max(dim=0).values


def stitchable(grid: TileGrid, reduction: int) -> str | None:
    """Why the tiles' maps cannot be placed on a whole-cell canvas grid; None if they can."""
    for name, value in (("preprocess.input_size", grid.canvas), ("model.tiles.size",
                        grid.tile_size), ("the tiles' stride", grid.stride)):
        if value % reduction:
            return f"{name} {value} is not a multiple of the heat-map's {reduction} px cells"
    return None
