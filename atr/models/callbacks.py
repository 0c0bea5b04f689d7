"""Training-time measurements that end up in train_metrics.json."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class TrainThroughput(L.Callback):
    """Images/s of the training loop proper: loading + step, validation excluded.

    Lightning runs validation before `on_train_epoch_end`, so an epoch is timed
    from its start to its last train batch, not to the epoch-end hook.
    """

    def __init__(self) -> None:
        self.images = 0
        self.seconds = 0.0
        self._start: float | None = None
        self._last: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._last = time.perf_counter(), None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:
        self.images += len(batch[0]) * trainer.world_size
        self._last = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is not None and self._last is not None:
            self.seconds += self._last - self._start
        self._start = self._last = None

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0
