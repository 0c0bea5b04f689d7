"""Where the MLflow server's authentication lives, and the launcher that reads it.

`mlflow.auth` (conf/mlflow.yaml) is turned into a folder in the runtime (never in git):

    <mlflow.auth.dir>/basic_auth.ini   MLflow's auth config: admin user, default permission,
                                       user database (generated from conf/mlflow.yaml)
    <mlflow.auth.dir>/secrets.json     admin bootstrap password + Flask secret key, mode
                                       0600, generated on first start unless the
                                       environment gives them (MLFLOW_AUTH_ADMIN_PASSWORD,
                                       MLFLOW_FLASK_SERVER_SECRET_KEY)

The launcher (atr/registry/mlflow_launch.py) puts those into the environment of `mlflow
server` and its workers (secrets never appear on a command line) and adds `--app-name
atr-auth`.
"""

from __future__ import annotations

import configparser
import json
import os
import secrets
from pathlib import Path
from typing import Any

from atr.registry.tracking import cfg_value

INI = "basic_auth.ini"
SECRETS = "secrets.json"
APP_NAME = "atr-auth"
PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS")
# env name -> key in secrets.json
SECRET_ENV = {"MLFLOW_AUTH_ADMIN_PASSWORD": "admin_password",
              "MLFLOW_FLASK_SERVER_SECRET_KEY": "secret_key"}


def auth_enabled(cfg: Any) -> bool:
    return bool(cfg_value(cfg, "mlflow.auth.enabled", False))


def auth_dir(cfg: Any) -> Path:
    return Path(str(cfg_value(cfg, "mlflow.auth.dir"))).resolve()


def write_auth_files(cfg: Any) -> Path:
    """basic_auth.ini from the config, secrets.json if missing; returns the folder."""
    folder = auth_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    permission = str(cfg_value(cfg, "mlflow.auth.default_permission", "READ"))
    if permission not in PERMISSIONS:
        raise ValueError(f"mlflow.auth.default_permission={permission!r}: one of {PERMISSIONS}")
    database = str(cfg_value(cfg, "mlflow.auth.database_uri",
                             f"sqlite:///{folder / 'basic_auth.db'}"))
    if "%" in database:  # MLflow reads the file with interpolation on
        raise ValueError("mlflow.auth.database_uri must not contain '%' (write %% or "
                         "pass the password through the environment)")
    ini = configparser.RawConfigParser()
    ini["mlflow"] = {
        "default_permission": permission,
        "database_uri": database,
        "admin_username": str(cfg_value(cfg, "mlflow.auth.admin_username", "admin")),
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        # PBKDF2 on every request costs ~0.3 s of CPU here; cached per worker for this long
        # (a password changed or an account deleted through the API is effective at once
        # on the worker that handled it, on the others within the TTL)
        "auth_cache_ttl_seconds": str(int(cfg_value(cfg, "mlflow.auth.cache_ttl_s", 0))),
    }
    with open(folder / INI, "w") as fh:
        ini.write(fh)
    aliases = cfg_value(cfg, "mlflow.auth.approval_aliases", ["champion"]) or ["champion"]
    (folder / "approval_aliases").write_text(",".join(map(str, aliases)) + "\n")
    path = folder / SECRETS
    if not path.is_file():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({key: secrets.token_urlsafe(24) for key in SECRET_ENV.values()}, fh)
    return folder


def read_secrets(folder: Path) -> dict[str, str]:
    path = folder / SECRETS
    return json.loads(path.read_text()) if path.is_file() else {}


def admin_credentials(cfg: Any) -> tuple[str, str]:
    """The admin account for user management: MLFLOW_TRACKING_USERNAME/PASSWORD when set,
    else the bootstrap admin of the runtime's secrets.json."""
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get(
        "MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return user, password
    stored = read_secrets(auth_dir(cfg))
    password = os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD") or stored.get("admin_password")
    if not password:
        raise ValueError(f"no admin credentials: set MLFLOW_TRACKING_USERNAME/PASSWORD, or "
                         f"start `atr mlflow` once (it writes {auth_dir(cfg) / SECRETS})")
    return str(cfg_value(cfg, "mlflow.auth.admin_username", "admin")), password


def server_env(folder: Path) -> dict[str, str]:
    """What `mlflow server --app-name atr-auth` needs in its environment."""
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(folder / INI)}
    stored = read_secrets(folder)
    for name, key in SECRET_ENV.items():
        value = os.environ.get(name) or stored.get(key)
        if not value:
            raise ValueError(f"{name} is not set and {folder / SECRETS} has no {key}")
        env[name] = value
    aliases = folder / "approval_aliases"
    if aliases.is_file():
        env["ATR_APPROVAL_ALIASES"] = aliases.read_text().strip()
    return env
