"""LightningDataModule over an ATR dataset folder (manifest splits, serving's preprocessing).

Each sample goes PreprocessSpec.decode -> augmentation (train only; uint8 RGB or
float32 attenuation, by representation) -> PreprocessSpec.prepare, the very functions
serving calls, so train and serve see identically mapped pixels.

Class imbalance: handled with BCE `pos_weight` (negatives/positives per threat
output, from the train split, capped), not a weighted sampler. The task is
multi-label: a sampler draws whole items, so oversampling a rare threat also
oversamples whatever rides with it and skews the `paper_only` prior; a
per-output weight fixes each output's balance independently and keeps every
epoch a plain pass over the data (DDP's distributed sampler stays simple too).
The low-risk output (`paper_only` or `no_threat`, the taxonomy's `low_risk`) keeps
weight 1 by default (`paper_pos_weight`): it is not rare, and
up-weighting paper evidence would push non-paper items towards CLEAR, the one
error the policy must keep below its leak bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import albumentations as A
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, get_worker_info

from atr.data.augment import build_augment
from atr.data.box_masks import box_targets, class_masks
from atr.data.manifest import Dataset, read_dataset
from atr.package.preprocess import PreprocessSpec
from atr.policy.taxonomy import Taxonomy


class ScreeningImages(torch.utils.data.Dataset):
    """(image float32 3xSxS, target float32 K) for the rows of one split; with `boxes`
    and `localisation` (the threat outputs' indices and the heat-map grid) also the box
    masks' cell targets and which classes they are valid for (atr/data/box_masks.py).

    Decoded images are kept in memory up to `cache_mb` (per process): PNG decoding is
    ~45 % of the per-image loading cost, and every epoch after the first skips it.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        targets: np.ndarray,
        spec: PreprocessSpec,
        transform: A.Compose | None = None,
        cache_mb: float = 0.0,
        boxes: Sequence[str] | None = None,
        localisation: tuple[Sequence[int], Sequence[str], tuple[int, int]] | None = None,
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.boxes = None if localisation is None else list(boxes or [])
        self.localisation = localisation
        self.targets = np.asarray(targets, dtype=np.float32)
        self.spec = spec
        self.transform = transform
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: dict[int, np.ndarray] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.paths)

    def _decoded(self, index: int) -> np.ndarray:
        rgb = self._cache.get(index)
        if rgb is None:
            rgb = self.spec.decode(self.paths[index])
            if self._cached_bytes + rgb.nbytes <= self.cache_bytes:
                self._cache[index] = rgb
                self._cached_bytes += rgb.nbytes
        return rgb

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        rgb = self._decoded(index)  # augmentations return new arrays: the cache stays clean
        if self.localisation is not None:
            return self._with_boxes(index, rgb)
        if self.transform is not None:
            rgb = self.transform(image=rgb)["image"]
        return torch.from_numpy(self.spec.prepare(rgb)), torch.from_numpy(self.targets[index])

    def _with_boxes(self, index: int, rgb: np.ndarray) -> tuple[torch.Tensor, ...]:
        outputs, classes, grid = self.localisation  # type: ignore[misc]
        boxes = self.boxes[index] if self.boxes else "[]"
        mask = class_masks(boxes, classes, *rgb.shape[:2])
        if self.transform is not None:  # one draw moves the pixels and the masks alike
            done = self.transform(image=rgb, mask=mask)
            rgb, mask = done["image"], done["mask"]
        target = self.targets[index]
        cells, valid = box_targets(mask, target[list(outputs)], self.spec, grid)
        return (torch.from_numpy(self.spec.prepare(rgb)), torch.from_numpy(target),
                torch.from_numpy(cells), torch.from_numpy(valid))


def seed_worker_augment(worker_id: int) -> None:
    """Give each loader worker its own augmentation stream.

    albumentations 2 keeps private generators; forked workers would otherwise
    all replay the parent's stream. torch.initial_seed() differs per worker and
    derives from the seed set by `seed_everything`, so runs stay reproducible.
    """
    info = get_worker_info()
    if info is not None and getattr(info.dataset, "transform", None) is not None:
        info.dataset.transform.set_random_seed(torch.initial_seed() % 2**32)


def pos_weight_from(targets: np.ndarray, cap: float) -> np.ndarray:
    """negatives / positives per output, in [1/cap, cap]; 1 where an output has no positives."""
    pos = targets.sum(0)
    neg = len(targets) - pos
    weight = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    return np.clip(weight, 1.0 / cap, cap).astype(np.float32)


class ScreeningDataModule(L.LightningDataModule):
    """Instantiated from the `data` node (conf/data/default.yaml `_target_`, which holds the
    defaults: none here, so that there is one copy); the taxonomy, the preprocessing, the
    augmentation node and the seed are the run's, passed by atr/train.py."""

    def __init__(
        self,
        *,
        dir: str | Path,  # named as its config key (data.dir), builtin shadowed here only
        taxonomy: Taxonomy,
        spec: PreprocessSpec,
        augment: Mapping[str, Any] | None,
        seed: int,
        batch_size: int,
        num_workers: int,
        persistent_workers: bool,
        pin_memory: bool,
        imbalance: str,
        pos_weight_cap: float,
        paper_pos_weight: float | None,
        cache_mb: float,
    ) -> None:
        super().__init__()
        if imbalance not in ("pos_weight", "none"):
            raise ValueError(f"data.imbalance={imbalance!r}: expected 'pos_weight' or 'none'")
        self.dataset_dir = Path(dir)
        self.taxonomy = taxonomy
        self.spec = spec
        self.augment_cfg = dict(augment or {})
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.persistent_workers = persistent_workers and num_workers > 0
        self.pin_memory = pin_memory
        self.imbalance = imbalance
        self.pos_weight_cap = pos_weight_cap
        self.paper_pos_weight = paper_pos_weight
        self.seed = seed
        self.cache_mb = cache_mb
        self.dataset: Dataset | None = None
        self.splits: dict[str, ScreeningImages] = {}
        self.localisation: tuple[list[int], list[str], tuple[int, int]] | None = None

    def enable_localisation(self, classes: Sequence[str], grid: tuple[int, int]) -> None:
        """Also yield box-mask targets for `classes` (threat outputs) on `grid` (the model's
        heat-map): atr/train.py calls it when the model has a localisation head."""
        index = [self.outputs.index(c) for c in classes]
        self.localisation = (index, list(classes), (int(grid[0]), int(grid[1])))

    @property
    def outputs(self) -> list[str]:
        return self.taxonomy.model_outputs

    def load(self) -> Dataset:
        """Read and check the manifest once (also called before the model is built)."""
        if self.dataset is None:
            if not (self.dataset_dir / "manifest.parquet").is_file():
                raise FileNotFoundError(
                    f"dataset not found: {self.dataset_dir} has no manifest.parquet "
                    "(set data.dir=..., or make one with `atr data synth`)"
                )
            self.dataset = read_dataset(self.dataset_dir, taxonomy=self.taxonomy)
            if len(self.dataset.split("train")) == 0 or len(self.dataset.split("val")) == 0:
                raise ValueError(
                    f"dataset {self.dataset_dir}: needs rows in both train and val splits"
                )
        return self.dataset

    def pos_weight(self) -> list[float]:
        ds = self.load()
        if self.imbalance == "none":
            return [1.0] * len(self.outputs)
        weight = pos_weight_from(ds.targets(ds.split("train"), outputs=self.outputs),
                                 self.pos_weight_cap)
        if self.paper_pos_weight is not None:
            weight[0] = self.paper_pos_weight  # outputs[0]: the low-risk output
        return weight.tolist()

    def split_dataset(self, name: str, *, train: bool = False) -> ScreeningImages:
        ds = self.load()
        rows = ds.split(name)
        transform = build_augment(self.augment_cfg, self.spec.representation) if train else None
        if transform is not None:
            transform.set_random_seed(self.seed)  # used as is when num_workers=0
        column = self.spec.input_column  # "raw" for dual-energy input
        missing = rows[column].isna()
        if missing.any():
            raise ValueError(
                f"dataset {self.dataset_dir}: {int(missing.sum())} {name} item(s) have no "
                f"{column!r} file (first: {rows.loc[missing, 'item_id'].iloc[0]}); the "
                f"{self.spec.representation} representation reads it"
            )
        paths = [ds.root / p for p in rows[column]]
        # The training config's taxonomy decides the low-risk definition, not the dataset's.
        return ScreeningImages(paths, ds.targets(rows, outputs=self.outputs), self.spec,
                               transform, cache_mb=self.cache_mb,
                               boxes=rows["boxes"].tolist(), localisation=self.localisation)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and "train" not in self.splits:
            self.splits["train"] = self.split_dataset("train", train=True)
        if stage in (None, "fit", "validate") and "val" not in self.splits:
            self.splits["val"] = self.split_dataset("val")
        if stage in (None, "test") and "test" not in self.splits:
            self.splits["test"] = self.split_dataset("test")

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.splits[name],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.persistent_workers,
            pin_memory=self.pin_memory,
            worker_init_fn=seed_worker_augment,
            # a 1-image tail batch breaks BatchNorm in training
            drop_last=shuffle and len(self.splits[name]) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
