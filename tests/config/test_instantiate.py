"""The `_target_` groups of `atr train` instantiate from the composed config."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import OmegaConf

from atr.config import compose
from atr.models.callbacks import TrainThroughput, instantiate_callbacks, one_of
from atr.package.preprocess import PreprocessSpec
from atr.policy.taxonomy import Taxonomy
from atr.train import build_datamodule, build_model, make_logger

SMALL = ["model.preprocess.input_size=64", "data.batch_size=8"]


def _parts(cfg) -> tuple[Taxonomy, PreprocessSpec]:
    taxonomy = Taxonomy.from_dict(OmegaConf.to_container(cfg.taxonomy, resolve=True))
    spec = PreprocessSpec(**OmegaConf.to_container(cfg.model.preprocess, resolve=True))
    return taxonomy, spec


def test_model_node_instantiates_the_screening_module(runtime_overrides: list[str]) -> None:
    cfg = compose("train", [*runtime_overrides, *SMALL, "model.tiles.grid=2",
                            "model.tiles.size=32", "model.lr=0.01"])
    taxonomy, _ = _parts(cfg)
    weights = [2.0] * len(taxonomy.model_outputs)
    model = build_model(cfg, taxonomy, weights)
    hp = model.hparams
    assert list(hp.outputs) == taxonomy.model_outputs and hp.pos_weight == weights
    assert (hp.input_size, hp.tile_grid, hp.tile_size, hp.lr) == (64, 2, 32, 0.01)
    assert hp.backbone == cfg.model.backbone
    assert model.pos_weight.tolist() == weights
    with pytest.raises(ValueError, match="test_time_views"):
        build_model(compose("train", [*runtime_overrides, *SMALL,
                                      "model.test_time_views=[mirror]"]), taxonomy, weights)


def test_data_node_instantiates_the_datamodule(runtime_overrides: list[str],
                                               tmp_path: Path) -> None:
    cfg = compose("train", [*runtime_overrides, *SMALL, f"data.dir={tmp_path / 'ds'}",
                            "data.num_workers=0", "seed=7"])
    taxonomy, spec = _parts(cfg)
    dm = build_datamodule(cfg, taxonomy, spec)
    # The run's objects are passed as they are (not turned into configs on the way).
    assert dm.taxonomy is taxonomy and dm.spec is spec
    assert (dm.dataset_dir, dm.batch_size, dm.num_workers, dm.seed) == (tmp_path / "ds", 8, 0, 7)
    assert dm.augment_cfg == OmegaConf.to_container(cfg.augment, resolve=True)
    with pytest.raises(ValueError, match="data.imbalance"):
        build_datamodule(compose("train", [*runtime_overrides, "data.imbalance=sampler"]),
                         taxonomy, spec)


def test_callbacks_instantiate_with_the_run_folder(runtime_overrides: list[str],
                                                   tmp_path: Path) -> None:
    cfg = compose("train", [*runtime_overrides, "train.monitor=val/ap_paper",
                            "train.monitor_mode=max"])
    callbacks = instantiate_callbacks(cfg.callbacks, tmp_path / "run-1")
    assert [type(c) for c in callbacks] == [ModelCheckpoint, TrainThroughput,
                                            LearningRateMonitor]
    checkpoint = one_of(callbacks, ModelCheckpoint)
    assert Path(checkpoint.dirpath) == tmp_path / "run-1"
    assert (checkpoint.monitor, checkpoint.mode, checkpoint.save_last) == ("val/ap_paper",
                                                                           "max", True)
    # One switched off: train needs its results, and says so.
    fewer = instantiate_callbacks(compose("train", [*runtime_overrides,
                                                    "callbacks.throughput=null"]).callbacks,
                                  tmp_path)
    with pytest.raises(ValueError, match="TrainThroughput"):
        one_of(fewer, TrainThroughput)


def test_logger_instantiates_on_the_runtime_store(runtime_overrides: list[str]) -> None:
    cfg = compose("train", [*runtime_overrides, "mlflow.experiment=atr-config-test"])
    logger = make_logger(cfg, {"job": "test"})
    assert isinstance(logger, MLFlowLogger)
    assert logger._tracking_uri == str(cfg.paths.tracking_uri)
    assert logger._experiment_name == "atr-config-test" and logger.tags == {"job": "test"}


def test_a_misspelt_key_of_an_instantiated_group_fails_naming_it(
        runtime_overrides: list[str]) -> None:
    from hydra.errors import ConfigCompositionException

    for key in ("model.dropuot=0.2", "data.batchsize=8", "callbacks.model_checkpoint.mod=max",
                "logger.experiment=x"):
        with pytest.raises(ConfigCompositionException, match=key.split("=")[0].split(".")[-1]):
            compose("train", [*runtime_overrides, key])
