"""`atr train` end to end on simulated data: package files, MLflow run, learning, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from hydra.errors import ConfigCompositionException
from mlflow.tracking import MlflowClient

from atr.cli import main
from atr.config import compose
from atr.data.synth import make_dataset
from atr.package.onnx_scorer import OnnxScorer
from atr.package.preprocess import decode_image
from atr.train import run

PACKAGE_FILES = {"model.ckpt", "model.onnx", "preprocess.json", "taxonomy.json",
                 "train_metrics.json", "run.json"}
# Small and quick: 64 px, no loader processes (their start-up dominates tiny runs).
TINY = ["model.preprocess.input_size=64", "data.batch_size=32", "data.num_workers=0",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def test_tiny_training_job_writes_package_and_mlflow_run(
    tiny_dataset: Path, runtime_overrides: list[str], tmp_path: Path
) -> None:
    cfg = compose("train", [*runtime_overrides, f"data.dir={tiny_dataset}", *TINY,
                            "trainer.max_epochs=2"])
    result = run(cfg)

    out = Path(cfg.train.out_dir)
    assert out == tmp_path / "artifacts" / "model"
    assert {p.name for p in out.iterdir()} >= PACKAGE_FILES
    run_info = json.loads((out / "run.json").read_text())
    assert run_info["run_id"] == result["run_id"]
    assert run_info["tracking_uri"].startswith("sqlite:///") and str(tmp_path) in run_info[
        "tracking_uri"]

    mlflow_run = MlflowClient(run_info["tracking_uri"]).get_run(run_info["run_id"])
    assert mlflow_run.info.experiment_id == run_info["experiment_id"]
    params, metrics, tags = mlflow_run.data.params, mlflow_run.data.metrics, mlflow_run.data.tags
    assert params["model.backbone"] == cfg.model.backbone
    assert params["trainer.max_epochs"] == "2"
    assert {"val/loss", "train/loss_epoch", "wall_time_s", "train_images_per_s"} <= set(metrics)
    assert "val/auroc/paper_only" in metrics
    assert tags["data.path"] == str(tiny_dataset.resolve())
    assert "data.manifest_sha256" in tags

    train_metrics = json.loads((out / "train_metrics.json").read_text())
    assert train_metrics["epochs"] == 2 and train_metrics["train_images_per_s"] > 0
    assert json.loads((out / "taxonomy.json").read_text())["name"] == cfg.taxonomy.name
    assert json.loads((out / "preprocess.json").read_text())["input_size"] == 64
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    # The default model localises (model.localisation.weight > 0): the optional heat-map.
    assert [o.name for o in session.get_outputs()] == ["scores", "embedding", "heatmap"]
    assert "train/loc_loss_epoch" in metrics and (out / "localisation.json").is_file()
    # The serving/evaluation side loads the package as written.
    scorer = OnnxScorer(out)
    assert scorer.localisation is not None and list(scorer.localisation.classes) == \
        scorer.taxonomy.threats
    rgb = decode_image(next(tiny_dataset.glob("batch-*/*[0-9].png")))
    scores, embedding = scorer.score_images([rgb, rgb])
    assert scores.shape == (2, len(scorer.outputs)) and embedding.shape[0] == 2
    # The default config bakes the four flips into the graph: a flipped bag scores the same.
    assert train_metrics["test_time_views"] == ["identity", "hflip", "vflip", "rot180"]
    flipped, _ = scorer.score_images([rgb[:, ::-1].copy(), rgb[::-1, :].copy()])
    np.testing.assert_allclose(flipped, scores, atol=1e-5)

    # Resume from the newest last.ckpt: training continues at epoch 2, not from scratch.
    resumed = run(compose("train", [*runtime_overrides, f"data.dir={tiny_dataset}", *TINY,
                                    "trainer.max_epochs=3", "train.resume_from=last"]))
    assert resumed["epochs"] == 3
    steps = json.loads((out / "train_metrics.json").read_text())["global_steps"]
    assert steps == 3 * train_metrics["global_steps"] // 2


def test_training_beats_chance_on_an_easy_set(
    tmp_path: Path, runtime_overrides: list[str]
) -> None:
    """A broken loop (wrong targets, no gradient, frozen weights) fails this.

    Easy = no concealment tricks, no small threats, cluttered non-paper items.
    Measured: val AUROC(paper_only) 0.92 after 8 epochs (~20 s of CPU time);
    a model that learnt nothing scores 0.5 +- 0.06 on these 120 val items.
    """
    data = make_dataset(tmp_path / "easy", count=400, image_size=64, seed=5,
                        splits={"train": 0.7, "val": 0.3, "calib": 0.0, "test": 0.0},
                        extra=["mix.p_concealed=0", "mix.p_small_threat=0",
                               "mix.clutter_items=[2,7]"])
    result = run(compose("train", [*runtime_overrides, f"data.dir={data}", *TINY,
                                   "trainer.max_epochs=8"]))
    # The last epoch's metrics (not the best epoch's): no selection on val.
    assert result["val/auroc/paper_only"] >= 0.8, result


def test_bad_config_key_fails_with_hydra_message(runtime_overrides: list[str]) -> None:
    with pytest.raises(ConfigCompositionException, match="max_epoch"):
        compose("train", [*runtime_overrides, "trainer.max_epoch=3"])
    assert main(["train", "trainer.max_epoch=3"]) == 2


def test_job_help_shows_usage_and_the_documented_keys(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: atr train [key=value ...]")
    assert "\n  atr train train.resume_from=last" in out  # conf/train.yaml's own examples
    assert main(["labels", "export", "-h"]) == 0
    assert capsys.readouterr().out.startswith("usage: atr labels export")


def test_missing_dataset_is_named(runtime_overrides: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dataset"
    with pytest.raises(FileNotFoundError, match="no-such-dataset"):
        run(compose("train", [*runtime_overrides, f"data.dir={missing}", *TINY]))


def test_unknown_backbone_is_explained(tiny_dataset: Path, runtime_overrides: list[str]) -> None:
    with pytest.raises(ValueError, match="list_models"):
        run(compose("train", [*runtime_overrides, f"data.dir={tiny_dataset}", *TINY,
                              "model.backbone=resnet_9000"]))


@pytest.mark.parametrize("group", ["trainer=gpu", "trainer=ddp", "debug=overfit",
                                   "debug=fast_dev_run", "experiment=baseline", "augment=none",
                                   "model=resnet10t"])
def test_config_groups_compose(group: str, runtime_overrides: list[str]) -> None:
    cfg = compose("train", [*runtime_overrides, group])
    assert cfg.model.preprocess.input_size > 0 and cfg.trainer.max_epochs > 0
    if group == "trainer=ddp":
        assert cfg.trainer.strategy == "ddp" and cfg.trainer.num_nodes == 1


def test_warm_start_from_a_file_and_from_a_registered_alias(
    tiny_dataset: Path, runtime_overrides: list[str]
) -> None:
    """Fine-tuning starts from the given weights (lr=0 keeps them exactly), for
    `finetune.max_epochs`; a models:/ alias resolves to its training run's checkpoint."""
    import torch

    base = [*runtime_overrides, f"data.dir={tiny_dataset}", *TINY]
    first = run(compose("train", [*base, "trainer.max_epochs=1"]))
    out = Path(first["out_dir"])
    start = torch.load(out / "model.ckpt", weights_only=False)["state_dict"]
    conv = "backbone.conv_stem.weight"

    tuned = run(compose("train", [*base, f"train.init_from={out / 'model.ckpt'}",
                                  "train.finetune.max_epochs=2", "train.finetune.lr=0"]))
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["init_from"] == str(out / "model.ckpt") and tuned["epochs"] == 2
    after = torch.load(out / "model.ckpt", weights_only=False)["state_dict"]
    assert torch.equal(after[conv], start[conv])
    # Control: at lr=0 a run from scratch keeps its random start, not those weights.
    scratch = run(compose("train", [*base, "trainer.max_epochs=1", "model.lr=0"]))
    again = torch.load(Path(scratch["out_dir"]) / "model.ckpt", weights_only=False)["state_dict"]
    assert not torch.equal(again[conv], start[conv])

    cfg = compose("train", base)
    client = MlflowClient(tracking_uri=str(cfg.paths.tracking_uri),
                          registry_uri=str(cfg.paths.registry_uri))
    client.create_registered_model("warm-test")
    version = client.create_model_version(
        "warm-test", source=f"{client.get_run(first['run_id']).info.artifact_uri}/checkpoint",
        run_id=first["run_id"])
    client.set_registered_model_alias("warm-test", "champion", version.version)
    by_alias = run(compose("train", [*base, "train.init_from=models:/warm-test@champion",
                                     "train.finetune.max_epochs=1"]))
    assert json.loads((out / "train_metrics.json").read_text())["init_from"] == (
        f"models:/warm-test/{version.version}")
    assert by_alias["epochs"] == 1
    assert client.get_run(by_alias["run_id"]).data.tags["init_from"] == (
        f"models:/warm-test/{version.version}")

    # No such alias yet (a fresh clone): scratch when asked for, else a clear error.
    fresh = run(compose("train", [*base, "trainer.max_epochs=1", "train.init_missing=scratch",
                                  "train.init_from=models:/warm-test@nobody"]))
    assert json.loads((out / "train_metrics.json").read_text())["init_from"] == "scratch"
    assert fresh["epochs"] == 1
    with pytest.raises(LookupError, match="warm-test@nobody"):
        run(compose("train", [*base, "train.init_from=models:/warm-test@nobody"]))
    with pytest.raises(FileNotFoundError, match="init_from"):
        run(compose("train", [*base, "train.init_from=/no/such.ckpt"]))


def test_warm_start_refuses_weights_of_another_model(tmp_path: Path) -> None:
    import torch

    from atr.models.screening_module import ScreeningModule
    from atr.models.warm_start import load_init_weights

    small = ScreeningModule(["paper_only", "knife"], input_size=32, pos_weight=[1.0, 3.0])
    path = tmp_path / "w.ckpt"
    torch.save({"state_dict": small.state_dict()}, path)
    other = ScreeningModule(["paper_only", "knife", "firearm"], input_size=32)
    with pytest.raises(ValueError, match="init_from=null"):
        load_init_weights(other, path, "w.ckpt")
    # Same architecture: weights load, the new data's pos_weight stays.
    same = ScreeningModule(["paper_only", "knife"], input_size=32, pos_weight=[1.0, 9.0])
    load_init_weights(same, path, "w.ckpt")
    assert same.pos_weight.tolist() == [1.0, 9.0]
    assert torch.equal(same.head[1].weight, small.head[1].weight)


@pytest.mark.slow
def test_ddp_trains_with_two_processes_and_rank_zero_writes_the_package(
    tiny_dataset: Path, runtime_overrides: list[str], tmp_path: Path
) -> None:
    # The real Lightning DDP path (trainer=ddp), two CPU processes over gloo: what a GPU
    # cluster runs, minus SyncBatchNorm and mixed precision, which need CUDA.
    atr = Path(sys.executable).parent / "atr"
    cmd = [str(atr), "train", *runtime_overrides, f"data.dir={tiny_dataset}", *TINY,
           "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
           "trainer.sync_batchnorm=false", "trainer.precision=32", "trainer.max_epochs=2"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Starting with 2 processes" in done.stderr + done.stdout
    out = tmp_path / "artifacts" / "model"
    assert {p.name for p in out.iterdir()} >= PACKAGE_FILES
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["device"] == "cpu x2" and metrics["epochs"] == 2
    run_info = json.loads((out / "run.json").read_text())
    # One MLflow run (rank 0's), and its checkpoints in that run's folder.
    runs = MlflowClient(run_info["tracking_uri"]).search_runs([run_info["experiment_id"]])
    assert [r.info.run_id for r in runs] == [run_info["run_id"]]
    assert Path(metrics["best_checkpoint"]).parent.name == run_info["run_id"]
