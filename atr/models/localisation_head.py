"""Where the evidence is: a light per-threat-class heat-map head beside the classifier.

The head reads two feature maps of the backbone (timm `forward_intermediates`): the
stride-16 map (fine enough to place a knife on a 160 px canvas: a 10 x 10 grid) and the
final stride-32 map (the features the classifier pools, which know *what* is there). The
coarse map is projected, upsampled to the fine grid and added to the projected fine map;
a 1x1 convolution then gives one logit per threat class and grid cell. It is trained with
an auxiliary per-cell BCE against the simulator's object boxes drawn as masks
(atr/data/box_masks.py), weight `model.localisation.weight`; only threat classes, and an
item contributes for a class only where its boxes say where that class is (or that it is
absent). The classifier is untouched: the head adds ~20 k weights and one small conv.
docs/localisation.md says why this and not CAMs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# The stride of the grid the heat-map lives on.
FINE_REDUCTION = 16
# Initial bias of the output: sigmoid(-4) ~ 0.018, a heat-map that starts cold (most cells
# hold no threat), so the first steps do not spend the classifier's gradient on noise.
PRIOR_LOGIT = -4.0


def fine_feature_index(backbone: nn.Module) -> int:
    """The index (timm feature_info) of the stride-16 feature map; refuses a backbone
    without one or without `forward_intermediates`."""
    infos = getattr(backbone, "feature_info", None)
    if not hasattr(backbone, "forward_intermediates") or not infos:
        raise ValueError(
            f"model.localisation: backbone {type(backbone).__name__} has no "
            "forward_intermediates/feature_info; set model.localisation.weight=0")
    for i, info in enumerate(infos):
        if int(info["reduction"]) == FINE_REDUCTION:
            return i
    raise ValueError(f"model.localisation: backbone {type(backbone).__name__} has no "
                     f"stride-{FINE_REDUCTION} feature map; set model.localisation.weight=0")


class LocalisationHead(nn.Module):
    """(fine N x Cf x h x w, coarse N x Cc x h/2 x w/2) -> heat-map logits N x K x h x w."""

    def __init__(self, fine_channels: int, coarse_channels: int, classes: int,
                 width: int = 32) -> None:
        super().__init__()
        self.fine = nn.Conv2d(fine_channels, width, 3, padding=1)
        self.coarse = nn.Conv2d(coarse_channels, width, 1)
        self.out = nn.Conv2d(width, classes, 1)
        nn.init.constant_(self.out.bias, PRIOR_LOGIT)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.coarse(coarse), size=fine.shape[-2:], mode="nearest")
        return self.out(F.relu(self.fine(fine) + up))


def localisation_loss(logits: torch.Tensor, target: torch.Tensor,
                      valid: torch.Tensor) -> torch.Tensor:
    """Mean per-cell BCE over the (item, class) pairs marked valid (N x K); 0 (graph kept)
    when none is: a batch without any box teaches the head nothing."""
    weight = valid[:, :, None, None].expand_as(logits)
    cells = weight.sum()
    if cells == 0:
        return logits.sum() * 0.0
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (bce * weight).sum() / cells
