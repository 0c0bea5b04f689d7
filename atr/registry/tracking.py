"""Point MLflow at the runtime folder named by the config (tracking DB, registry, artifacts).

Every job that talks to MLflow (train, evaluate, register, gate, approve) calls
`configure(cfg)` first, so they all see the same SQLite store whatever directory
they run from. The registry needs a database backend: a file store is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

DEFAULT_EXPERIMENT = "atr-screening"
# Registry-capable stores; a plain file store (./mlruns) cannot hold registered models.
REGISTRY_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql", "http", "databricks")


def cfg_value(cfg: Any, key: str, default: Any = None) -> Any:
    """cfg.a.b lookup that tolerates missing keys (configs of other jobs lack our groups)."""
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, key, default=default) if cfg is not None else default
    return default if value is None else value


def model_name(cfg: Any) -> str:
    """`registry.model_name` (conf/registry/default.yaml), the one place the name is set."""
    name = cfg_value(cfg, "registry.model_name")
    if name is None:
        raise ValueError("registry.model_name is not set: the job's config needs "
                         "`- registry: default` in its defaults list (conf/registry)")
    return str(name)


def configure(cfg: Any) -> MlflowClient:
    """Set tracking + registry URIs from `paths`; make sure the folders exist. Returns a client."""
    tracking_uri = str(cfg_value(cfg, "paths.tracking_uri"))
    registry_uri = str(cfg_value(cfg, "paths.registry_uri", tracking_uri))
    if not tracking_uri or tracking_uri == "None":
        raise ValueError("paths.tracking_uri is not set (conf/paths/default.yaml)")
    if not registry_uri.startswith(REGISTRY_SCHEMES):
        raise ValueError(
            f"paths.registry_uri={registry_uri!r}: the model registry needs a database "
            "backend (e.g. sqlite:///runtime/mlflow/mlflow.db) or an MLflow server URL"
        )
    for uri in (tracking_uri, registry_uri):
        _ensure_sqlite_folder(uri)
    artifacts = cfg_value(cfg, "paths.mlflow_artifacts")
    if artifacts and "://" not in str(artifacts):  # a local folder, not s3://...
        Path(str(artifacts)).mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)


def ensure_experiment(cfg: Any, name: str | None = None) -> str:
    """Experiment id for `name` (default `mlflow.experiment` or atr-screening), created with
    its artifacts under `paths.mlflow_artifacts/<name>` so they live in the runtime folder,
    not in ./mlruns of whatever directory the job ran from."""
    name = name or str(cfg_value(cfg, "mlflow.experiment", DEFAULT_EXPERIMENT))
    client = MlflowClient()
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    artifacts = cfg_value(cfg, "paths.mlflow_artifacts")
    if not artifacts:
        location = None  # the server's default artifact root (e.g. proxied to S3)
    elif "://" in str(artifacts):  # an object store: s3://bucket/path
        location = f"{str(artifacts).rstrip('/')}/{name}"
    else:
        location = Path(str(artifacts)).resolve().joinpath(name).as_uri()
    return client.create_experiment(name, artifact_location=location)


def _ensure_sqlite_folder(uri: str) -> None:
    # SQLAlchemy will not create the parent folder of a SQLite file.
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if str(db) != ":memory:":
            db.parent.mkdir(parents=True, exist_ok=True)


LOGIN_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@contextmanager
def mlflow_login(user: str, password: str) -> Iterator[None]:
    """This process's MLflow clients as `user` on a server with login (MLflow reads the
    credentials from the environment at each request); the previous ones restored on exit."""
    saved = {k: os.environ.get(k) for k in LOGIN_ENV}
    os.environ.update(dict(zip(LOGIN_ENV, (user, password), strict=True)))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
