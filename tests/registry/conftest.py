"""A real, tiny model package and an isolated MLflow SQLite store for the registry tests."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest
from helpers.packages import build_package
from omegaconf import DictConfig

from atr.config import compose


@pytest.fixture
def registry_cfg(
    tmp_path: Path, runtime_overrides: list[str]
) -> Iterator[Callable[..., DictConfig]]:
    """Compose one of our job configs against a fresh runtime folder in tmp_path."""

    def make(name: str = "register", *extra: str) -> DictConfig:
        return compose(name, [*runtime_overrides, *extra])

    yield make
    # Leave no process-wide MLflow state pointing into this test's tmp_path.
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(scope="session")
def package_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once (ONNX export costs a second); tests copy it."""
    return build_package(tmp_path_factory.mktemp("pkg") / "package", seed=0)


@pytest.fixture
def new_package(tmp_path: Path, package_template: Path) -> Callable[..., Path]:
    """A fresh copy of the package with a training run of its own (run.json)."""
    count = {"n": 0}

    def make(cfg: DictConfig) -> Path:
        from atr.registry.tracking import configure, ensure_experiment

        count["n"] += 1
        pkg = tmp_path / f"package-{count['n']}"
        shutil.copytree(package_template, pkg)
        configure(cfg)
        with mlflow.start_run(experiment_id=ensure_experiment(cfg), run_name="train") as run:
            mlflow.log_param("seed", count["n"])
        (pkg / "run.json").write_text(json.dumps({
            "run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
            "tracking_uri": mlflow.get_tracking_uri()}))
        return pkg

    return make
