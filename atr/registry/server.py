"""`atr mlflow`: the MLflow tracking server and UI on the runtime folder's store.

Runs in the foreground (Ctrl-C stops it). It serves the same SQLite database the jobs
write (`paths.tracking_uri`), so runs, versions, gate reports and aliases appear as soon
as a job finishes; reviewers can move `@champion` from the UI.

Artifacts: jobs write straight into `paths.mlflow_artifacts` (experiments are created
with that location), so the server is pointed at the same folder both as
`--default-artifact-root` (experiments created from the UI) and `--artifacts-destination`
(proxied uploads), and the UI reads what the jobs wrote.

Security: MLflow 3's server refuses Host headers outside its allow-list (DNS-rebinding
guard); the default list covers localhost and 127.0.0.1 on any port, so on loopback no
flag is needed. Set `mlflow.allowed_hosts` only when exposing the server.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from atr.registry.tracking import cfg_value, configure


def server_command(cfg: Any) -> list[str]:
    """The `mlflow server` command line for this configuration."""
    tracking_uri = str(cfg_value(cfg, "paths.tracking_uri"))
    registry_uri = str(cfg_value(cfg, "paths.registry_uri", tracking_uri))
    artifacts = Path(str(cfg_value(cfg, "paths.mlflow_artifacts"))).resolve()
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", tracking_uri,
        "--registry-store-uri", registry_uri,
        "--default-artifact-root", artifacts.as_uri(),
        "--artifacts-destination", artifacts.as_uri(),
        "--host", str(cfg_value(cfg, "mlflow.host", "127.0.0.1")),
        "--port", str(int(cfg_value(cfg, "mlflow.port", 5000))),
        "--workers", str(int(cfg_value(cfg, "mlflow.workers", 1))),
    ]
    allowed = cfg_value(cfg, "mlflow.allowed_hosts")
    if allowed:
        cmd += ["--allowed-hosts", str(allowed)]
    cmd += [str(a) for a in (cfg_value(cfg, "mlflow.extra_args", []) or [])]
    return cmd


def run(cfg: Any) -> None:
    """Job for `atr mlflow`: create the store if needed, then run the server in the foreground."""
    configure(cfg)  # creates the runtime folders; the server creates the tables
    cmd = server_command(cfg)
    host, port = cfg_value(cfg, "mlflow.host", "127.0.0.1"), cfg_value(cfg, "mlflow.port", 5000)
    print(f"MLflow UI: http://{host}:{port}  (store {cfg_value(cfg, 'paths.tracking_uri')})",
          flush=True)
    try:
        code = subprocess.run(cmd, check=False).returncode
    except KeyboardInterrupt:  # Ctrl-C is the normal way to stop a foreground server
        return
    if code:
        raise SystemExit(code)
