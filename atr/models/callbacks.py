"""The training callbacks: conf/callbacks nodes instantiated, and the throughput
measurement that ends up in train_metrics.json."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

C = TypeVar("C", bound=L.Callback)


def instantiate_callbacks(nodes: Mapping[str, Any], ckpt_dir: str | Path) -> list[L.Callback]:
    """Every `_target_` node of `callbacks`, in file order; a ModelCheckpoint gets the run's
    folder, known only at run time (the MLflow run id names it)."""
    from hydra.utils import get_class, instantiate

    callbacks = []
    for name, node in nodes.items():
        if node is None:  # callbacks.<name>=null switches one off
            continue
        if "_target_" not in node:
            raise ValueError(f"callbacks.{name}: no _target_ (conf/callbacks/default.yaml)")
        extra = ({"dirpath": str(ckpt_dir)}
                 if issubclass(get_class(str(node["_target_"])), ModelCheckpoint) else {})
        callbacks.append(instantiate(node, **extra))
    return callbacks


def one_of(callbacks: Sequence[L.Callback], kind: type[C]) -> C:
    """The single callback of `kind` the training job reads its results from."""
    found = [c for c in callbacks if isinstance(c, kind)]
    if len(found) != 1:
        raise ValueError(f"callbacks: atr train needs exactly one {kind.__name__}, "
                         f"got {len(found)} (conf/callbacks/default.yaml)")
    return found[0]


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
