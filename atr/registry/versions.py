"""Find a registered version by alias or number and fetch its package, checksums verified.

The gate and `atr approve` only ever work on a package whose files match the sha256 tags
written at registration: a tampered or half-downloaded version is refused, not scored.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from atr.registry.package_files import verify_against_tags
from atr.registry.pyfunc_model import PACKAGE_ARTIFACT


def resolve(client: MlflowClient, name: str, ref: str | int) -> ModelVersion | None:
    """The version `ref` names: a version number ("3") or an alias ("champion").
    None when the alias is unset or the version does not exist."""
    ref = str(ref)
    try:
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException:
        return None


def download_package(version: ModelVersion, dest_root: str | Path) -> Path:
    """Download the version's pyfunc model and return its package folder (fresh copy)."""
    dest = Path(dest_root) / f"{version.name}-v{version.version}"
    if dest.exists():
        shutil.rmtree(dest)  # never score a stale or partly downloaded copy
    dest.mkdir(parents=True)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{version.name}/{version.version}", dst_path=str(dest)
    )
    package = Path(local) / _package_path(Path(local))
    if not package.is_dir():
        raise FileNotFoundError(
            f"model {version.name} v{version.version}: no package folder in its artifacts "
            f"({version.source}); was it registered with `atr register`?"
        )
    return package


def _package_path(model_dir: Path) -> str:
    """Where the `package` artifact sits inside a downloaded pyfunc, read from its MLmodel
    (`atr register` stages it as artifacts/package; older logs kept the folder's name)."""
    from mlflow.models import Model

    try:
        flavor = Model.load(str(model_dir)).flavors.get("python_function", {})
        return str(flavor["artifacts"][PACKAGE_ARTIFACT]["path"])
    except (MlflowException, OSError, KeyError, TypeError):
        return f"artifacts/{PACKAGE_ARTIFACT}"


def verified_package(version: ModelVersion, dest_root: str | Path) -> Path:
    """download_package + check every file against the version's sha256.* tags."""
    package = download_package(version, dest_root)
    verify_against_tags(package, version.tags)
    return package
