"""`atr pretrain`: physics pretraining -- a backbone trained on simulated parcels, registered.

No model hub is reachable from a customs network (`model.pretrained: false`), so a model
for a small real archive would otherwise start from random weights. The simulator is the
pretraining source ATR can ship: it renders, from X-ray physics, as many labelled parcels
as wanted, threats included, in the same input representation the real model uses
(pseudo-colour, or the raw dual-energy channels as attenuation).

    simulate `pretrain.count` parcels (child process)  ->  atr train on them
    ->  a new version of the registered model `pretrain.model_name` (atr-backbone),
        alias `pretrain.alias` (current), pointing at the run's checkpoint

A real archive's training then starts from it:
    atr train train.init_from=models:/atr-backbone@current train.init_scope=backbone
(only the backbone is copied; the head, tiles and input geometry are the new model's).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from atr.config import compose

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"  # the training run's artifact folder holding model.ckpt


def simulate(cfg: DictConfig) -> Path:
    """The simulated pretraining set, made in a child process (in-process simulation slows
    torch training in the same process; see docs/decisions.md)."""
    p = cfg.pretrain
    out = Path(str(p.dataset))
    if (out / "manifest.parquet").is_file() and not bool(p.resimulate):
        log.info("pretraining set %s exists: reused (pretrain.resimulate=true to redo)", out)
        return out
    args = [f"synth.out={out}", "synth.overwrite=true", f"synth.count={int(p.count)}",
            f"synth.image_size={int(p.image_size)}", f"synth.seed={int(p.seed)}",
            f"synth.save_raw={str(bool(p.save_raw)).lower()}", f"scanner={p.scanner}",
            f"mix={p.mix}", *_paths(cfg)]
    subprocess.run([sys.executable, "-m", "atr.cli", "data", "synth", *args], check=True)
    return out


def _paths(cfg: DictConfig) -> list[str]:
    return [f"paths.{k}={v}" for k, v in OmegaConf.to_container(cfg.paths, resolve=True).items()
            if k in ("root", "data_dir", "artifacts_dir")]


def register_backbone(cfg: DictConfig, run_id: str, summary: dict[str, Any]) -> dict[str, Any]:
    """A new version of `pretrain.model_name` for the run's checkpoint, alias moved to it."""
    from atr.registry.tracking import configure

    client = configure(cfg)
    name, alias = str(cfg.pretrain.model_name), str(cfg.pretrain.alias)
    if not _exists(client, name):
        client.create_registered_model(
            name, description="Backbones pretrained on simulated X-ray parcels (atr pretrain); "
            "start a model from one with train.init_from=models:/NAME@ALIAS "
            "train.init_scope=backbone")
    tags = {k: str(v) for k, v in summary.items()}
    version = client.create_model_version(name, source=f"runs:/{run_id}/{CHECKPOINT_DIR}",
                                          run_id=run_id, tags=tags)
    client.set_registered_model_alias(name, alias, version.version)
    return {"model": name, "version": str(version.version), "alias": alias,
            "uri": f"models:/{name}@{alias}"}


def _exists(client: Any, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return True
    except MlflowException:
        return False


def run(cfg: DictConfig) -> dict[str, Any]:
    from atr.train import run as train

    p = cfg.pretrain
    dataset = simulate(cfg)
    overrides = [f"data.dir={dataset}", f"train.out_dir={p.out_dir}",
                 f"mlflow.experiment={p.experiment}", *_paths(cfg), *list(p.train_overrides)]
    train_cfg = compose("train", overrides)
    trained = train(train_cfg)
    spec = json.loads((Path(str(p.out_dir)) / "preprocess.json").read_text())
    summary = {"pretrain.dataset": str(dataset), "pretrain.count": int(p.count),
               "pretrain.scanner": str(p.scanner), "backbone": str(train_cfg.model.backbone),
               "representation": spec["representation"], "input_size": spec["input_size"],
               "train_overrides": " ".join(map(str, p.train_overrides))}
    registered = register_backbone(cfg, str(trained["run_id"]), summary)
    log.info("pretrained backbone registered as %s (version %s)", registered["uri"],
             registered["version"])
    return {**registered, "run_id": trained["run_id"], "wall_time_s": trained["wall_time_s"],
            **{k: v for k, v in trained.items() if k.startswith("val/")}}
