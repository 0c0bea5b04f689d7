"""Feature extractors by timm name; the screening head is ours (screening_module)."""

from __future__ import annotations

import timm
import torch
from torch import nn


class UnknownBackboneError(ValueError):
    pass


def create_backbone(name: str, *, pretrained: bool = False, in_chans: int = 3) -> nn.Module:
    """A timm model with its classifier removed: input Nx3xHxW -> pooled features NxD.

    `pretrained` defaults to false: no model hub is reachable from the customs
    network; a site with a hub (or a local weights cache) sets it true.
    """
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('.')[0][:6]}*")[:10]
        hint = f" Similar names: {', '.join(close)}." if close else ""
        raise UnknownBackboneError(
            f"model.backbone={name!r} is not a timm model.{hint} List all names with "
            "`python -c \"import timm; print(timm.list_models('*resnet*'))\"` "
            "(any glob pattern)."
        )
    return timm.create_model(name, pretrained=pretrained, num_classes=0, in_chans=in_chans)


@torch.no_grad()
def feature_dim(backbone: nn.Module, input_size: int) -> int:
    """Width of the pooled features, measured (timm's num_features is not always it)."""
    was_training = backbone.training
    backbone.eval()
    dim = int(backbone(torch.zeros(1, 3, input_size, input_size)).shape[-1])
    backbone.train(was_training)
    return dim
