"""`atr train`: fit the screening model (Lightning), track it (MLflow), write its files.

Outputs in `train.out_dir`: model.ckpt (best on val), model.onnx, preprocess.json,
taxonomy.json, train_metrics.json, run.json. Evaluation (`atr evaluate`) takes it from
there: it scores calib/test with the ONNX model, calibrates the policy and registers.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from atr.data.datamodule import ScreeningDataModule
from atr.models.callbacks import TrainThroughput, instantiate_callbacks, one_of
from atr.models.onnx_export import export_onnx
from atr.models.screening_module import ScreeningModule
from atr.models.warm_start import CHECKPOINT_ARTIFACT, warm_start
from atr.package.layout import LOCALISATION_FILE
from atr.package.localisation import write_localisation_spec
from atr.package.preprocess import PreprocessSpec
from atr.policy.taxonomy import Taxonomy

log = logging.getLogger(__name__)


def build_datamodule(
    cfg: DictConfig, taxonomy: Taxonomy, spec: PreprocessSpec
) -> ScreeningDataModule:
    """conf/data's node instantiated, with the run's taxonomy, preprocessing, augmentation."""
    # Partial, then called: objects given to instantiate itself become DictConfigs.
    make = instantiate(cfg.data, _partial_=True)
    return make(taxonomy=taxonomy, spec=spec, seed=int(cfg.seed),
                augment=OmegaConf.to_container(cfg.augment, resolve=True))


def build_model(cfg: DictConfig, taxonomy: Taxonomy, pos_weight: list[float]) -> ScreeningModule:
    """conf/model's node instantiated (atr/models/build.py) for the run's outputs."""
    make = instantiate(cfg.model, _partial_=True, _convert_="all")
    return make(outputs=taxonomy.model_outputs, pos_weight=pos_weight)


def flat_params(cfg: DictConfig) -> dict[str, Any]:
    """Config as dotted MLflow params; the taxonomy by name (its classes are in taxonomy.json)."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    tree["taxonomy"] = {"name": tree["taxonomy"].get("name")}
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            flat[prefix[:-1]] = node

    walk(tree, "")
    return flat


def resolve_resume(resume_from: str | None, ckpt_dir: Path) -> str | None:
    """None, an existing .ckpt path, or "last": the newest <ckpt_dir>/<run>/last.ckpt."""
    if not resume_from:
        return None
    if resume_from == "last":
        found = sorted(ckpt_dir.glob("*/last.ckpt"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise FileNotFoundError(f"train.resume_from=last: no */last.ckpt under {ckpt_dir}")
        return str(found[-1])
    path = Path(resume_from)
    if not path.is_file():
        raise FileNotFoundError(f"train.resume_from: checkpoint {path} does not exist")
    return str(path)


def make_logger(cfg: DictConfig, tags: dict[str, str]) -> MLFlowLogger:
    """conf/logger's node instantiated, after the store and its experiment exist."""
    from atr.registry.tracking import configure, ensure_experiment

    configure(cfg)  # the runtime folder's SQLite store, artifacts under paths.mlflow_artifacts
    if rank_zero_only.rank == 0:  # under DDP only rank 0 talks to MLflow (SQLite, one writer)
        ensure_experiment(cfg, str(cfg.logger.experiment_name))
    return instantiate(cfg.logger, tags=tags)


def data_tags(dataset_dir: Path) -> dict[str, str]:
    try:
        from atr.registry.lineage import lineage_tags

        return lineage_tags(dataset_dir)
    except Exception as exc:  # lineage is information, never a reason to fail training
        log.warning("lineage tags unavailable: %s", exc)
        return {"data.path": str(dataset_dir)}


def run(cfg: DictConfig) -> dict[str, Any]:
    L.seed_everything(int(cfg.seed), workers=True)
    taxonomy = Taxonomy.from_dict(OmegaConf.to_container(cfg.taxonomy, resolve=True))
    spec = PreprocessSpec(**OmegaConf.to_container(cfg.model.preprocess, resolve=True))
    datamodule = build_datamodule(cfg, taxonomy, spec)
    dataset = datamodule.load()  # fails early, naming the folder, if the data is not there
    model = build_model(cfg, taxonomy, datamodule.pos_weight())
    if model.localises:  # box masks as the heat-map head's targets (atr/data/box_masks.py)
        datamodule.enable_localisation(model.localisation_classes, model.heatmap_grid)
    ckpt_path = resolve_resume(cfg.train.resume_from, Path(cfg.train.ckpt_dir))
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    # A resumed run restores its own weights and schedule; a warm start only the weights.
    init = None if ckpt_path else warm_start(cfg, model)
    # Fine-tuning the same model takes the short schedule; a pretrained backbone under a
    # fresh head trains on the run's own schedule (model.lr, trainer.max_epochs).
    if init and str(cfg.train.get("init_scope", "all")) == "all":
        model.hparams.lr = float(cfg.train.finetune.lr)
        trainer_kwargs["max_epochs"] = int(cfg.train.finetune.max_epochs)

    tags = {**data_tags(Path(cfg.data.dir)), "job": "train", "backbone": str(cfg.model.backbone),
            "init_from": init or "scratch"}
    if ckpt_path:
        tags["resumed_from"] = ckpt_path
    logger = make_logger(cfg, tags)
    logger.log_hyperparams(flat_params(cfg))
    # Under DDP only rank 0 has an MLflow run (run_id None elsewhere); ModelCheckpoint
    # broadcasts rank 0's folder to every rank at setup, so the others' placeholder is unused.
    run_dir = Path(cfg.train.ckpt_dir) / (logger.run_id or f"rank-{rank_zero_only.rank}")
    # A resumed run keeps its checkpoint folder, so best-so-far tracking carries on.
    callbacks = instantiate_callbacks(cfg.callbacks, Path(ckpt_path).parent if ckpt_path
                                      else run_dir)
    checkpoint, throughput = one_of(callbacks, ModelCheckpoint), one_of(callbacks, TrainThroughput)
    trainer = L.Trainer(
        **trainer_kwargs,
        logger=logger,
        callbacks=callbacks,
        default_root_dir=str(cfg.train.ckpt_dir),
    )
    started = time.perf_counter()
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except BaseException:
        logger.finalize("failed")  # else the MLflow run stays RUNNING forever
        raise
    wall = time.perf_counter() - started
    if not trainer.is_global_zero:
        return {}

    best = checkpoint.best_model_path
    if best:  # export the weights that were best on val, not merely the last ones
        model = ScreeningModule.load_from_checkpoint(best, map_location="cpu")
    # The last epoch's metrics; the exported weights are the best epoch's (best_score).
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    metrics = {
        "wall_time_s": round(wall, 2),
        "train_images_per_s": round(throughput.images_per_s, 1),
        "train_images_seen": throughput.images,
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "train_size": len(dataset.split("train")),
        "val_size": len(dataset.split("val")),
        "best_checkpoint": best or None,
        "best_score": float(checkpoint.best_model_score) if checkpoint.best_model_score is not None
        else None,
        "monitor": str(cfg.train.monitor),
        "final_metrics": final,
        "pos_weight": dict(zip(taxonomy.model_outputs, model.pos_weight.tolist(), strict=True)),
        "device": f"{cfg.trainer.accelerator} x{cfg.trainer.devices}",
        "init_from": init or "scratch",
        "test_time_views": list(cfg.model.test_time_views),
    }
    out = write_outputs(cfg, model, trainer, spec, taxonomy, metrics, logger)
    logger.log_metrics({"wall_time_s": wall, "train_images_per_s": throughput.images_per_s})
    logger.experiment.log_artifact(logger.run_id, str(out / "train_metrics.json"))
    # The next retrain can fine-tune from this run (train.init_from=models:/NAME@champion).
    logger.experiment.log_artifact(logger.run_id, str(out / "model.ckpt"),
                                   str(Path(CHECKPOINT_ARTIFACT).parent))
    logger.finalize("success")
    return {"out_dir": str(out), "run_id": logger.run_id, **{k: metrics[k] for k in (
        "wall_time_s", "train_images_per_s", "epochs", "best_score")},
        **{k: v for k, v in final.items() if k.startswith("val/")}}


def write_outputs(
    cfg: DictConfig,
    model: ScreeningModule,
    trainer: L.Trainer,
    spec: PreprocessSpec,
    taxonomy: Taxonomy,
    metrics: dict[str, Any],
    logger: MLFlowLogger,
) -> Path:
    out = Path(cfg.train.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if metrics["best_checkpoint"]:
        shutil.copyfile(metrics["best_checkpoint"], out / "model.ckpt")
    else:  # fast_dev_run and friends write no checkpoints: save the weights we have
        trainer.save_checkpoint(out / "model.ckpt", weights_only=True)
    export_onnx(model, out / "model.onnx", spec.input_size, opset=int(cfg.train.onnx_opset),
                atol=float(cfg.train.onnx_atol), views=list(cfg.model.test_time_views))
    spec.save(out / "preprocess.json")
    if model.localises:
        write_localisation_spec(out / LOCALISATION_FILE, model.localisation_classes,
                                model.heatmap_grid, spec.input_size)
    else:  # a reused out_dir: a stale spec would name an output this network lacks
        (out / LOCALISATION_FILE).unlink(missing_ok=True)
    (out / "taxonomy.json").write_text(json.dumps(taxonomy.to_dict(), indent=2) + "\n")
    (out / "train_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    run_info = {
        "run_id": logger.run_id,
        "experiment_id": logger.experiment_id,
        "tracking_uri": str(cfg.paths.tracking_uri),
    }
    (out / "run.json").write_text(json.dumps(run_info, indent=2) + "\n")
    log.info("model files written to %s (MLflow run %s)", out, logger.run_id)
    return out
