"""`atr train -m`: a Hydra-style sweep, one job run (and one MLflow run) per combination."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from atr.cli import main, sweep

TINY = ["model.preprocess.input_size=64", "data.batch_size=32", "data.num_workers=0",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "trainer.max_epochs=1"]


def test_sweep_is_the_cartesian_product_in_hydra_order() -> None:
    assert sweep(["model.backbone=a,b", "seed=range(0,2)", "trainer.max_epochs=1"]) == [
        ["model.backbone=a", "seed=0", "trainer.max_epochs=1"],
        ["model.backbone=a", "seed=1", "trainer.max_epochs=1"],
        ["model.backbone=b", "seed=0", "trainer.max_epochs=1"],
        ["model.backbone=b", "seed=1", "trainer.max_epochs=1"]]
    assert sweep(["model=resnet10t", "+x=[1,2]"]) == [["model=resnet10t", "+x=[1,2]"]]


def test_bad_sweep_and_a_sweep_without_m_are_refused(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "-m", "seed=interval(0,1)"]) == 2
    assert main(["train", "seed=0,1"]) == 2  # Hydra: a sweep needs -m
    assert "bad" in capsys.readouterr().err


def test_multirun_trains_once_per_combination(
    tiny_dataset: Path, runtime_overrides: list[str], tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    rc = main(["train", "-m", *runtime_overrides, f"data.dir={tiny_dataset}", *TINY,
               "seed=0,1", "model.lr=0.002"])
    assert rc == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[atr train -m")]
    assert len(lines) == 2 and all(": ok" in ln and "run_id=" in ln for ln in lines)
    assert "seed=0" in lines[0] and "seed=1" in lines[1]

    client = MlflowClient(f"sqlite:///{tmp_path / 'runtime' / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("atr-training")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    assert {r.data.params["model.lr"] for r in runs} == {"0.002"}
    assert all(r.info.status == "FINISHED" for r in runs)
