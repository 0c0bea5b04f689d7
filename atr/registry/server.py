"""`atr mlflow`: the MLflow tracking server and UI on the runtime folder's store.

Runs in the foreground until Ctrl-C or SIGTERM, which reach the server and all its worker
processes (atr/processes.py: its own process group, a grace period, then SIGKILL), so no
worker outlives the command. It serves the store the jobs write (`paths.tracking_uri`:
the runtime's SQLite file, or PostgreSQL in the distributed stack), so runs, versions, gate
reports and aliases appear as soon as a job finishes; reviewers move `@champion` in the UI.

Artifacts: by default jobs write straight into `paths.mlflow_artifacts` (experiments are
created with that location), so the server is pointed at the same folder both as
`--default-artifact-root` (experiments created from the UI) and `--artifacts-destination`
(proxied uploads). `mlflow.artifacts_destination=s3://bucket/path` puts them in an object
store instead; MLflow (server and every client that reads or writes artifacts) then needs
MLFLOW_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in its environment.

Authentication (`mlflow.auth.enabled`, on by default): the server runs MLflow's basic-auth
app with ATR's approval rules (`--app-name atr-auth`, atr/registry/auth_app.py); accounts
and roles: `atr mlflow-user` (atr/registry/accounts.py); docs/approval.md.

Security: MLflow 3's server refuses Host headers outside its allow-list (DNS-rebinding
guard); the default list covers localhost and 127.0.0.1 on any port, so on loopback no
flag is needed. Set `mlflow.allowed_hosts` only when exposing the server.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from atr.processes import run_foreground
from atr.registry.auth_config import auth_dir, auth_enabled, write_auth_files
from atr.registry.tracking import cfg_value, configure


def artifacts_destination(cfg: Any) -> str:
    """`mlflow.artifacts_destination` (an object-store URI such as s3://bucket/path), else
    the runtime folder `paths.mlflow_artifacts` as a file:// URI."""
    configured = cfg_value(cfg, "mlflow.artifacts_destination")
    if configured:
        return str(configured)
    return Path(str(cfg_value(cfg, "paths.mlflow_artifacts"))).resolve().as_uri()


def server_command(cfg: Any) -> list[str]:
    """The command line of the MLflow server for this configuration.

    `python -m atr.registry.mlflow_launch [--auth-dir DIR] <mlflow server options>`: the
    launcher sets the server's environment (auth files: `write_auth_files(cfg)`, which
    `prepare`/`atr mlflow` call); the caller adds only the object store's credentials."""
    tracking_uri = str(cfg_value(cfg, "paths.tracking_uri"))
    registry_uri = str(cfg_value(cfg, "paths.registry_uri", tracking_uri))
    destination = artifacts_destination(cfg)
    options = [
        "--backend-store-uri", tracking_uri,
        "--registry-store-uri", registry_uri,
        "--default-artifact-root", str(cfg_value(cfg, "mlflow.default_artifact_root",
                                                 destination)),
        "--artifacts-destination", destination,
        "--host", str(cfg_value(cfg, "mlflow.host", "127.0.0.1")),
        "--port", str(int(cfg_value(cfg, "mlflow.port", 5000))),
        "--workers", str(int(cfg_value(cfg, "mlflow.workers", 1))),
    ]
    allowed = cfg_value(cfg, "mlflow.allowed_hosts")
    if allowed:
        options += ["--allowed-hosts", str(allowed)]
    options += [str(a) for a in (cfg_value(cfg, "mlflow.extra_args", []) or [])]
    launch = [sys.executable, "-m", "atr.registry.mlflow_launch"]
    if cfg_value(cfg, "mlflow.job_execution", False):
        launch.append("--job-execution")
    if auth_enabled(cfg):
        launch += ["--auth-dir", str(auth_dir(cfg))]
    return [*launch, *options]


def prepare(cfg: Any) -> list[str]:
    """Create the store folders and (with auth) the auth files; the server command."""
    configure(cfg)  # checks the store URIs, creates the runtime folders (the server: tables)
    if auth_enabled(cfg):
        write_auth_files(cfg)
    return server_command(cfg)


def run(cfg: Any) -> None:
    """Job for `atr mlflow`: the server in the foreground until Ctrl-C / SIGTERM."""
    cmd = prepare(cfg)
    host, port = cfg_value(cfg, "mlflow.host", "127.0.0.1"), cfg_value(cfg, "mlflow.port", 5000)
    print(f"MLflow UI: http://{host}:{port}  (store {cfg_value(cfg, 'paths.tracking_uri')})",
          flush=True)
    if auth_enabled(cfg):
        print(f"  login required; admin account "
              f"{cfg_value(cfg, 'mlflow.auth.admin_username', 'admin')}, bootstrap password "
              f"in {auth_dir(cfg) / 'secrets.json'}; add accounts with `atr mlflow-user`",
              flush=True)
    code = run_foreground(cmd)
    if code:
        raise SystemExit(code)
