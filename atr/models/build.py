"""The screening module from the `model` node: conf/model/default.yaml's `_target_`.

The node also holds what is not the module's (preprocess: the package's preprocess.json;
test_time_views: the exported graph) and names the tiles as a sub-node, so Hydra cannot
call ScreeningModule itself. This maps the node onto it, in one place, with no defaults:
the YAML holds them. The run's outputs (taxonomy) and pos_weight (train split) are passed
by atr/train.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from atr.models.screening_module import ScreeningModule
from atr.models.test_time_views import check_views


def screening_module(
    *,
    outputs: Sequence[str],
    pos_weight: Sequence[float] | None,
    backbone: str,
    pretrained: bool,
    dropout: float,
    lr: float,
    weight_decay: float,
    warmup_fraction: float,
    hard_negative_weight: float,
    hard_negative_fraction: float,
    channels_last: bool,
    tiles: Mapping[str, Any],
    preprocess: Mapping[str, Any],
    test_time_views: Sequence[str],
    localisation: Mapping[str, Any],
) -> ScreeningModule:
    check_views(test_time_views)  # before training, not after it at export
    return ScreeningModule(
        outputs=list(outputs), pos_weight=None if pos_weight is None else list(pos_weight),
        backbone=backbone, pretrained=pretrained, dropout=dropout, lr=lr,
        weight_decay=weight_decay, warmup_fraction=warmup_fraction,
        hard_negative_weight=hard_negative_weight,
        hard_negative_fraction=hard_negative_fraction, channels_last=channels_last,
        input_size=int(preprocess["input_size"]),  # the canvas, which tiles cut
        tile_grid=int(tiles["grid"]), tile_size=tiles.get("size"),
        localisation_weight=float(localisation["weight"]),
    )
