"""The stack's MLflow server, secure by default: authentication and ATR's approval rules
on (--app-name atr-auth, atr/registry/auth_app.py), as `atr mlflow` runs it.

Started with `atr mlflow`'s server command (atr.registry.server.server_command, auth files
by auth_config.write_auth_files, as `prepare` does):
- backend and model registry: the stack's PostgreSQL, database `mlflow`; the auth app's
  users and permissions: database `mlflow_auth` on the same server (its password reaches
  the server as libpq's PGPASSWORD, never in a URL or a file);
- artifacts proxied to S3 (clients upload through the server, no S3 key on a client);
- accounts, made as the admin at every `up` (atr.registry.accounts.ensure_account):
  a reviewer (MANAGE on the model: moves @champion, the server writes the approval
  record), the jobs' service account (EDIT: registers, @challenger), the replicas'
  reader (READ). Their passwords, the admin's bootstrap password and the Flask secret
  key are generated once into the stack's secrets.json (0600); the auth folder's own
  secrets.json (what `atr mlflow-user mlflow.auth.dir=...` reads) gets the same values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from atr.registry.tracking import LOGIN_ENV, mlflow_login

AUTH_DATABASE = "mlflow_auth"
ADMIN = "admin"
# role -> the stack's account of that role (atr.registry.accounts.ROLES: the permission)
ACCOUNTS = {"reviewer": "stack-reviewer", "service": "stack-jobs", "reader": "stack-reader"}
# keys of the stack's secrets.json this module needs
SECRET_KEYS = ("mlflow_admin_password", "mlflow_secret_key",
               *(f"mlflow_{role}_password" for role in ACCOUNTS))


def server_cfg(spec: Any, folder: Path) -> DictConfig:
    """`atr mlflow`'s configuration for the stack's server (`spec`: a StackSpec)."""
    return OmegaConf.create({
        "paths": {"tracking_uri": spec.store_url("mlflow"),
                  "registry_uri": spec.store_url("mlflow"),
                  "mlflow_artifacts": str(folder / "mlflow-artifacts")},
        "mlflow": {"host": "127.0.0.1", "port": spec.mlflow_port,
                   "workers": spec.mlflow_workers,
                   "artifacts_destination": f"s3://{spec.mlflow_bucket}/artifacts",
                   # clients upload through the server (no S3 key on training machines)
                   "default_artifact_root": "mlflow-artifacts:/",
                   "auth": {"enabled": True, "dir": str(folder / "mlflow-auth"),
                            "database_uri": spec.store_url(AUTH_DATABASE),
                            "admin_username": ADMIN, "default_permission": "READ",
                            "approval_aliases": ["champion"],
                            # replicas poll every few seconds: PBKDF2 on each call is
                            # ~0.3 s CPU
                            "cache_ttl_s": 30}}})


def prepare_server(spec: Any, folder: Path, secrets: Mapping[str, str]) -> list[str]:
    """The auth files (with the stack's admin password and Flask key) and the command:
    atr.registry.server.prepare's steps, except its MLflow client on the backend (that
    would open PostgreSQL from this process; the server migrates its own databases)."""
    from atr.registry.auth_config import SECRETS, write_auth_files
    from atr.registry.server import server_command

    cfg = server_cfg(spec, folder)
    auth = Path(cfg.mlflow.auth.dir)
    auth.mkdir(parents=True, exist_ok=True)
    path = auth / SECRETS
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps({"admin_password": secrets["mlflow_admin_password"],
                                "secret_key": secrets["mlflow_secret_key"]}))
    write_auth_files(cfg)
    return server_command(cfg)


def launch_env(base: Mapping[str, str]) -> dict[str, str]:
    """The server's environment without a caller's MLflow credentials or auth overrides
    (the auth folder's secrets.json is the one source of the admin password)."""
    drop = {*LOGIN_ENV, "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
            "MLFLOW_AUTH_CONFIG_PATH"}
    return {k: v for k, v in base.items() if k not in drop}


def credentials(secrets: Mapping[str, str], role: str) -> dict[str, str]:
    """The MLflow client's environment for the stack's `role` account."""
    return {"MLFLOW_TRACKING_USERNAME": ACCOUNTS[role],
            "MLFLOW_TRACKING_PASSWORD": secrets[f"mlflow_{role}_password"]}


def create_accounts(url: str, secrets: Mapping[str, str], model_name: str) -> None:
    """The three accounts and their permission on `model_name` (created by the admin)."""
    from atr.registry.accounts import ensure_account

    for role, name in ACCOUNTS.items():
        ensure_account(url, (ADMIN, secrets["mlflow_admin_password"]), name,
                       secrets[f"mlflow_{role}_password"], role, model_name)


def logged_in(secrets: Mapping[str, str], role: str) -> AbstractContextManager[None]:
    """This process's MLflow client as the stack's `role` account (restored on exit)."""
    return mlflow_login(*credentials(secrets, role).values())


REVIEWER_ENV = ("ATR_REVIEWER_USERNAME", "ATR_REVIEWER_PASSWORD")  # stack.env's


@contextmanager
def reviewer_from_env() -> Iterator[str | None]:
    """An unattended approval on an MLflow server with login (the demo's auto-approval,
    `retrain.auto_approve`, with stack.env sourced): the client as the reviewer account of
    ATR_REVIEWER_USERNAME/PASSWORD while inside; yields that account (then call approve
    without `by`: the server records the account), or None when they are not set (the
    client is left as it is; approve with `by`, the job records it)."""
    user, password = (os.environ.get(k, "").strip() for k in REVIEWER_ENV)
    if not (user and password):
        yield None
        return
    with mlflow_login(user, password):
        yield user
