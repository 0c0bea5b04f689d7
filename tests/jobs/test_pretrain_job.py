"""`atr pretrain` registers a backbone trained on simulated parcels, and a real archive's
model of another shape starts from it (`train.init_scope=backbone`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from atr.config import compose
from atr.data.synth import make_dataset
from atr.models.screening_module import ScreeningModule
from atr.models.warm_start import load_init_weights
from atr.pretrain import run as pretrain
from atr.train import run as train

TINY = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "data.batch_size=16", "model.test_time_views=[identity]"]
CONV = "backbone.conv_stem.weight"


@pytest.mark.slow
def test_pretrained_backbone_is_registered_and_starts_another_model(
    runtime_overrides: list[str], tmp_path: Path
) -> None:
    pre = pretrain(compose("pretrain", [*runtime_overrides, "pretrain.count=60",
                                        "pretrain.image_size=48",
                                        "pretrain.train_overrides=['experiment="
                                        "pretrain_dual_energy','trainer.max_epochs=1',"
                                        "'model.preprocess.input_size=48',"
                                        + ",".join(f"'{o}'" for o in TINY) + "]"]))
    assert pre["uri"] == "models:/atr-backbone@current" and pre["version"] == "1"
    cfg = compose("train", runtime_overrides)
    client = MlflowClient(tracking_uri=str(cfg.paths.tracking_uri),
                          registry_uri=str(cfg.paths.registry_uri))
    version = client.get_model_version_by_alias("atr-backbone", "current")
    assert version.run_id == pre["run_id"]
    assert version.tags["representation"] == "dual_energy" and version.tags["input_size"] == "48"
    pretrained = torch.load(tmp_path / "artifacts" / "pretrain-model" / "model.ckpt",
                            weights_only=False)["state_dict"]

    # The archive's model: another low-risk definition, tiles, canvas; lr 0 keeps weights.
    archive = make_dataset(tmp_path / "archive", count=60, image_size=48, seed=9,
                           save_raw=True)
    out = tmp_path / "artifacts" / "archive-model"
    result = train(compose("train", [*runtime_overrides, *TINY, "experiment=real_archive",
                                     f"data.dir={archive}", f"train.out_dir={out}",
                                     "model.preprocess.input_size=64", "model.tiles.grid=2",
                                     "model.tiles.size=48", "trainer.max_epochs=1",
                                     "model.lr=0", "train.init_missing=error"]))
    assert json.loads((out / "train_metrics.json").read_text())["init_from"] == (
        "models:/atr-backbone/1 (backbone)")
    assert result["epochs"] == 1  # the run's own schedule, not the fine-tuning one
    tuned = torch.load(out / "model.ckpt", weights_only=False)["state_dict"]
    assert torch.equal(tuned[CONV], pretrained[CONV])
    assert tuned["head.1.weight"].shape == pretrained["head.1.weight"].shape
    assert not torch.equal(tuned["head.1.weight"], pretrained["head.1.weight"])  # fresh head


def test_backbone_scope_loads_across_taxonomies_and_all_scope_refuses(tmp_path: Path) -> None:
    source = ScreeningModule(["paper_only", "knife", "firearm"], input_size=32)
    path = tmp_path / "pre.ckpt"
    torch.save({"state_dict": source.state_dict()}, path)
    target = ScreeningModule(["no_threat", "knife"], input_size=64, tile_grid=2, tile_size=32)
    with pytest.raises(ValueError, match="init_from=null"):
        load_init_weights(target, path, "pre.ckpt", scope="all")
    head_before = target.head[1].weight.clone()
    load_init_weights(target, path, "pre.ckpt", scope="backbone")
    assert torch.equal(target.backbone.conv_stem.weight, source.backbone.conv_stem.weight)
    assert torch.equal(target.head[1].weight, head_before)
    with pytest.raises(ValueError, match="init_scope"):
        load_init_weights(target, path, "pre.ckpt", scope="head")
