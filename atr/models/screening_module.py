"""The screening model: a timm backbone and one multi-label head over `model_outputs`."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MultilabelAUROC, MultilabelAveragePrecision

from atr.models.backbones import create_backbone, feature_dim
from atr.models.localisation_head import (
    FINE_REDUCTION,
    LocalisationHead,
    fine_feature_index,
    localisation_loss,
)
from atr.models.tiling import TileGrid, cut_tiles, pool_tiles, stitch_heatmaps, stitchable

log = logging.getLogger(__name__)


class ScreeningModule(L.LightningModule):
    """Multi-label screening: output 0 is `paper_only`, then one output per threat class.

    `forward` returns (logits, embedding); the embedding (pooled backbone
    features) is what serving logs for drift monitoring.
    """

    def __init__(
        self,
        outputs: Sequence[str],
        backbone: str = "mobilenetv3_small_100",
        pretrained: bool = False,
        input_size: int = 128,
        dropout: float = 0.1,
        lr: float = 3e-3,
        weight_decay: float = 0.05,
        warmup_fraction: float = 0.05,
        pos_weight: Sequence[float] | None = None,
        hard_negative_weight: float = 0.0,
        hard_negative_fraction: float = 0.25,
        channels_last: bool = True,
        tile_grid: int = 1,
        tile_size: int | None = None,
        localisation_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.outputs = list(outputs)
        self.backbone = create_backbone(backbone, pretrained=pretrained)
        # input_size is the canvas; with tiles the backbone sees tile_size pixels a side.
        self.tiles = TileGrid(grid=tile_grid, size=tile_size, canvas=input_size)
        self.embedding_dim = feature_dim(self.backbone, self.tiles.tile_size)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embedding_dim, len(outputs)))
        # NHWC: oneDNN's depthwise/pointwise kernels on CPU run ~1.5x faster than NCHW
        # (mobilenetv3_small_100, 2-core EPYC: 499 vs 320 train images/s at 128 px).
        # The exported ONNX graph is the same either way.
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.backbone.to(memory_format=self.memory_format)
        k = len(self.outputs)
        weight = torch.ones(k) if pos_weight is None else torch.tensor(list(pos_weight))
        if weight.shape != (k,):
            raise ValueError(f"pos_weight has {tuple(weight.shape)} entries, outputs {k}")
        # A buffer so that it moves with the module and lands in the checkpoint.
        self.register_buffer("pos_weight", weight)
        if hard_negative_weight < 0 or not 0 < hard_negative_fraction <= 1:
            raise ValueError(
                f"hard_negative_weight={hard_negative_weight} must be >= 0 and "
                f"hard_negative_fraction={hard_negative_fraction} in (0, 1]"
            )
        self.val_auroc = MultilabelAUROC(num_labels=k, average=None)
        self.val_ap = MultilabelAveragePrecision(num_labels=k, average=None)
        self.register_buffer("_val_pos", torch.zeros(k), persistent=False)
        self.register_buffer("_val_count", torch.zeros(()), persistent=False)
        self.example_input_array = torch.zeros(2, 3, input_size, input_size)
        self._init_localisation(localisation_weight)

    def _init_localisation(self, weight: float) -> None:
        """The heat-map head (atr/models/localisation_head.py) when the weight is > 0, on
        the threat outputs (all but output 0, the low-risk one)."""
        if weight < 0:
            raise ValueError(f"model.localisation.weight={weight} must be >= 0")
        self.localisation_classes = self.outputs[1:]
        self.loc_head: LocalisationHead | None = None
        self.heatmap_grid: tuple[int, int] | None = None
        if weight == 0 or not self.localisation_classes:
            return
        # With tiles each tile gets its own map, stitched onto the canvas's grid
        # (atr/models/tiling.py), which needs tiles that start and end on whole cells.
        why = stitchable(self.tiles, FINE_REDUCTION) if self._tiled else None
        if why is not None:
            raise ValueError(f"model.localisation with tiles: {why}; choose tiles on the "
                             f"{FINE_REDUCTION} px grid or set model.localisation.weight=0")
        self._fine_index = fine_feature_index(self.backbone)
        t = self.tiles.tile_size
        with torch.no_grad():
            was = self.backbone.training
            self.backbone.eval()
            final, (fine,) = self.backbone.forward_intermediates(
                self.example_input_array[:1, :, :t, :t], indices=[self._fine_index])
            self.backbone.train(was)
        self.loc_head = LocalisationHead(fine.shape[1], final.shape[1],
                                         len(self.localisation_classes))
        cells = self.tiles.canvas // FINE_REDUCTION
        self.heatmap_grid = (cells, cells) if self._tiled else (int(fine.shape[2]),
                                                                int(fine.shape[3]))

    @property
    def _tiled(self) -> bool:
        return self.tiles.grid > 1 or self.tiles.tile_size != self.tiles.canvas  # static

    @property
    def localises(self) -> bool:
        return self.loc_head is not None

    def forward_localised(self, image: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits N x K, embedding N x D, heat-map logits N x (K-1) x h x w): one backbone
        pass; the embedding is what `forward` gives (forward_head of the same features)."""
        if self.loc_head is None:
            raise RuntimeError("this model has no localisation head (model.localisation.weight=0)")
        x = cut_tiles(image, self.tiles) if self._tiled else image
        x = x.contiguous(memory_format=self.memory_format)
        final, (fine,) = self.backbone.forward_intermediates(x, indices=[self._fine_index])
        embedding = self.backbone.forward_head(final)
        logits, heat = self.head(embedding), self.loc_head(fine, final)
        if not self._tiled:
            return logits, embedding, heat
        logits, embedding = pool_tiles(logits, embedding, len(self.tiles.origins()))
        return logits, embedding, stitch_heatmaps(heat, self.tiles, FINE_REDUCTION)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Canvas N x 3 x S x S -> (logits N x K, embedding N x D); tiled when configured
        (atr/models/tiling.py: threats max-pooled, the low-risk output min-pooled)."""
        x = cut_tiles(image, self.tiles) if self._tiled else image
        embedding = self.backbone(x.contiguous(memory_format=self.memory_format))
        logits = self.head(embedding)
        if self._tiled:
            return pool_tiles(logits, embedding, len(self.tiles.origins()))
        return logits, embedding

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = nn.functional.binary_cross_entropy_with_logits(
            logits, target, pos_weight=self.pos_weight
        )
        if self.hparams.hard_negative_weight > 0:
            loss = loss + self.hparams.hard_negative_weight * self._hard_negative_loss(
                logits[:, 0], target[:, 0]
            )
        return loss

    def _hard_negative_loss(self, paper_logit: torch.Tensor, paper: torch.Tensor) -> torch.Tensor:
        """BCE of the batch's hardest non-paper-only items on the paper_only output.

        The policy clears above a threshold set by the highest paper_only scores
        among non-paper items, so the leak bound is decided by the tail of that
        distribution (organic goods that look like paper), which the mean BCE
        barely sees once most negatives are easy. This term is online hard
        example mining on that tail: the top `hard_negative_fraction` of the
        batch's non-paper items by paper_only logit, pushed towards 0.
        """
        neg = paper_logit[paper < 0.5]
        if neg.numel() == 0:
            return paper_logit.sum() * 0.0  # keeps the graph (and DDP) consistent
        k = max(1, math.ceil(self.hparams.hard_negative_fraction * neg.numel()))
        hardest = torch.topk(neg, k).values
        return nn.functional.softplus(hardest).mean()  # = BCE with target 0

    def _scored(self, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, localisation loss or None): the batch is (image, target) or, with box
        masks (ScreeningImages with a grid), (image, target, mask target, mask valid)."""
        image = batch[0]
        if self.loc_head is None or len(batch) < 4:
            return self(image)[0], None
        logits, _, heat = self.forward_localised(image)
        return logits, localisation_loss(heat, batch[2], batch[3])

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits, loc = self._scored(batch)
        loss = self._loss(logits, batch[1])
        if loc is not None:
            self.log("train/loc_loss", loc, on_epoch=True, batch_size=len(logits))
            loss = loss + self.hparams.localisation_weight * loc
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(logits))
        return loss

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        target = batch[1]
        logits, loc = self._scored(batch)
        # val/loss stays the classification loss: checkpoint selection is unchanged.
        self.log("val/loss", self._loss(logits, target), on_epoch=True, prog_bar=True,
                 batch_size=len(target), sync_dist=True)
        if loc is not None:
            self.log("val/loc_loss", loc, on_epoch=True, batch_size=len(target), sync_dist=True)
        probs, labels = torch.sigmoid(logits), target.round().long()
        self.val_auroc.update(probs, labels)
        self.val_ap.update(probs, labels)
        self._val_pos += target.sum(0)
        self._val_count += len(target)

    def on_validation_epoch_end(self) -> None:
        with warnings.catch_warnings():
            # torchmetrics warns for classes absent from val; they are masked out below.
            warnings.filterwarnings("ignore", message=".*(positive|negative) samples.*")
            auroc, ap = self.val_auroc.compute(), self.val_ap.compute()
        pos = self.trainer.strategy.reduce(self._val_pos, reduce_op="sum")
        count = self.trainer.strategy.reduce(self._val_count, reduce_op="sum")
        # AUROC/AP are undefined for a class without positives (or negatives) in
        # val; logging torchmetrics' placeholder 0 would fake a broken model.
        defined = (pos > 0) & (pos < count)
        metrics: dict[str, torch.Tensor] = {}
        for i, name in enumerate(self.outputs):
            if defined[i]:
                metrics[f"val/auroc/{name}"] = auroc[i]
                metrics[f"val/ap/{name}"] = ap[i]
        if defined.any():
            metrics["val/auroc_mean"] = auroc[defined].mean()
            metrics["val/ap_mean"] = ap[defined].mean()
        # Already global (torchmetrics and strategy.reduce sync them); sync_dist says so to DDP.
        self.log_dict(metrics, prog_bar=False, sync_dist=True)
        if defined[0]:
            self.log("val/ap_paper", ap[0], prog_bar=True, sync_dist=True)
        self.val_auroc.reset()
        self.val_ap.reset()
        self._val_pos.zero_()
        self._val_count.zero_()

    def configure_optimizers(self) -> dict[str, Any]:
        # No weight decay on norms and biases (standard for AdamW on small CNNs).
        decay, no_decay = [], []
        for p in self.parameters():
            if p.requires_grad:
                (decay if p.ndim > 1 else no_decay).append(p)
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.hparams.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hparams.lr,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(total * self.hparams.warmup_fraction)

        def lr_factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
