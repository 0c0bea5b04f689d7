"""Fixtures for the serving tests: a real MLflow SQLite registry holding tiny ONNX model
versions (code in tests/helpers; tests start `atr serve` with helpers.service.Server)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.packages import build_package
from helpers.registry import Registry, registry_at


@pytest.fixture(scope="session")
def package_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once (the ONNX export takes a second); registered as versions 1 and 2."""
    return build_package(tmp_path_factory.mktemp("pkg") / "package", seed=0)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, package_template: Path) -> Registry:
    """Two registered versions of the tiny package; `champion` -> 1, `challenger` -> 2.
    Shared by the session: a test that moves an alias puts it back."""
    reg = registry_at(tmp_path_factory.mktemp("runtime"))
    for _ in range(2):
        reg.register(package_template)
    reg.set_alias("champion", "1")
    return reg


@pytest.fixture(scope="session")
def blank_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite DB with its schema and no model (its migrations take seconds)."""
    reg = registry_at(tmp_path_factory.mktemp("blank"))
    (reg.root / "mlflow").mkdir(parents=True)
    reg.client().search_registered_models()
    return reg.root / "mlflow" / "mlflow.db"


@pytest.fixture
def empty_registry(tmp_path: Path, blank_mlflow_db: Path) -> Registry:
    """A registry with no model yet (a copy of the blank DB: no migrations per test)."""
    reg = registry_at(tmp_path / "runtime")
    (reg.root / "mlflow").mkdir(parents=True)
    shutil.copy(blank_mlflow_db, reg.root / "mlflow" / "mlflow.db")
    return reg

