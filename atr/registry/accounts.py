"""`atr mlflow-user NAME --role reviewer|service|reader`: an account of the MLflow server
and its permission on the registered model, through MLflow's own REST API as the admin.

Roles are MLflow permissions on the registered model (`registry.model_name`):

| role | permission | may |
| --- | --- | --- |
| reviewer | MANAGE | move @champion (approve, roll back), everything below |
| service | EDIT | register versions, move @challenger, write gate tags (the jobs) |
| reader | READ | read versions and download packages (serving replicas, monitor) |

The registered model is created here (as the admin) when missing: MLflow grants MANAGE to
whoever creates a registered model, so a job's service account must never be the first
to register it. The new account's password comes from the environment variable named by
`mlflow.user.password_env`, else it is generated and printed once (never stored).
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from atr.registry.auth_config import admin_credentials
from atr.registry.tracking import cfg_value, mlflow_login, model_name

ROLES = {"reviewer": "MANAGE", "service": "EDIT", "reader": "READ"}


def add_user(cfg: Any) -> dict[str, Any]:
    """Job for `atr mlflow-user NAME --role ROLE`."""
    name = cfg_value(cfg, "mlflow.user.name")
    role = str(cfg_value(cfg, "mlflow.user.role", "reviewer"))
    if not name:
        raise ValueError("usage: atr mlflow-user NAME --role reviewer|service|reader")
    if role not in ROLES:
        raise ValueError(f"--role {role!r}: one of {sorted(ROLES)}")
    env_name = str(cfg_value(cfg, "mlflow.user.password_env", "ATR_MLFLOW_USER_PASSWORD"))
    password = os.environ.get(env_name)
    generated = not password
    password = password or secrets.token_urlsafe(16)
    url = str(cfg_value(cfg, "mlflow.url"))
    created = ensure_account(url, admin_credentials(cfg), str(name), password, role,
                             model_name(cfg))
    out: dict[str, Any] = {"user": str(name), "role": role, "permission": ROLES[role],
                           "registered_model": model_name(cfg), "created": created,
                           "server": url}
    if created and generated:
        out["password"] = password  # shown once: MLflow keeps only its hash
    return out


def ensure_account(url: str, admin: tuple[str, str], name: str, password: str, role: str,
                   registered_model: str) -> bool:
    """Create `name` (if new) with `password`, grant its role on `registered_model`
    (created first when missing); True when the account is new."""
    from mlflow.exceptions import MlflowException, RestException
    from mlflow.server import get_app_client
    from mlflow.tracking import MlflowClient

    with mlflow_login(*admin):
        registry = MlflowClient(tracking_uri=url, registry_uri=url)
        try:
            registry.get_registered_model(registered_model)
        except MlflowException:
            registry.create_registered_model(registered_model)  # the admin is its creator
        auth = get_app_client("basic-auth", tracking_uri=url)
        try:
            auth.get_user(name)
            created = False
        except RestException:
            auth.create_user(name, password)
            created = True
        auth.grant_user_permission(name, "registered_model", registered_model, ROLES[role])
        return created
