"""`atr stack up|down|status`: the distributed stack for a developer (conf/stack.yaml).

`up` starts every server in the background, each the leader of its own process group
(they outlive the command, as `make stack-up` needs), and records them in
`<stack.dir>/pids.json` with their kernel start times; `down` stops those groups in
reverse order (the stop signal, a grace period, then SIGKILL), so no process is left, and
never signals a pid that now names another process. `status` says, per server, whether
it runs and answers. The addresses of PostgreSQL, S3 and MLflow come from the paths group
(conf/paths/stack.yaml), so `paths=stack` in any other command points at this stack.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from omegaconf import DictConfig

from atr.processes import group_alive
from atr.stack.stack import Stack, StackSpec, proc_start_time
from atr.stack.tracking import ACCOUNTS

GRACE_S = 20.0


def _port(url: str, key: str) -> int:
    port = urlparse(url).port
    if port is None:
        raise ValueError(f"paths.{key}={url!r}: the stack needs an explicit port (paths/stack)")
    return port


def spec_from_cfg(cfg: DictConfig) -> StackSpec:
    p, s = cfg.paths, cfg.stack
    for key in ("prediction_db", "tracking_uri", "s3_endpoint"):
        if key not in p or p[key] is None:
            raise ValueError(f"paths.{key} is not set: run `atr stack` with paths=stack")
    if not str(p.image_store).startswith("s3://"):
        raise ValueError(f"paths.image_store={p.image_store!r}: the stack's images are on S3")
    return StackSpec(
        dir=Path(str(s.dir)), postgres_port=_port(str(p.prediction_db), "prediction_db"),
        s3_port=_port(str(p.s3_endpoint), "s3_endpoint"),
        mlflow_port=_port(str(p.tracking_uri), "tracking_uri"),
        balancer_port=int(s.balancer_port), stats_port=int(s.stats_port),
        replica_ports=tuple(int(x) for x in s.replica_ports),
        image_store=str(p.image_store), dvc_remote=str(p.dvc_remote),
        mlflow_bucket=str(s.mlflow_bucket), model_name=str(cfg.registry.model_name),
        mlflow_workers=int(s.mlflow_workers),
        replica_overrides=tuple(str(o) for o in s.replica_overrides),
        scanners=tuple(str(x) for x in s.scanners),
        start_timeout_s=float(s.start_timeout_s))


def up(cfg: DictConfig) -> dict[str, Any]:
    spec = spec_from_cfg(cfg)
    folder = spec.dir.resolve()
    if any(_alive(p) for p in _recorded(folder)):
        raise ValueError(f"the stack in {folder} is already up (atr stack status; "
                         "atr stack down first)")
    stack = Stack(spec, detached=True).start()
    (folder / "pids.json").write_text(json.dumps(stack.processes(), indent=2) + "\n")
    from atr.config import conf_dir
    from atr.stack.dvc_remote import configure_remote

    configure_remote(conf_dir().parent, str(cfg.stack.dvc_remote), spec.dvc_remote,
                     stack.objects.url, stack.secrets["s3_access_key"],
                     stack.secrets["s3_secret_key"])
    return {**stack.urls(), "next": f"set -a; . {folder / 'stack.env'}; set +a  "
            "(ATR_PATHS=stack: every atr command, make demo included, uses this stack)",
            "mlflow_login": f"{spec.mlflow_url}: user {ACCOUNTS['reviewer']}, password "
            f"mlflow_reviewer_password in {folder / 'secrets.json'} (docs/stack.md)"}


def down(cfg: DictConfig) -> dict[str, Any]:
    folder = Path(str(cfg.stack.dir)).resolve()
    stopped = {}
    for proc in reversed(_recorded(folder)):
        stopped[proc["name"]] = _stop(proc)
    (folder / "pids.json").unlink(missing_ok=True)
    return {"stopped": stopped} if stopped else {"stopped": {}, "note": f"nothing recorded "
                                                 f"in {folder / 'pids.json'}"}


def status(cfg: DictConfig) -> dict[str, Any]:
    import httpx

    folder = Path(str(cfg.stack.dir)).resolve()
    procs = {p["name"]: "running" if _alive(p) else "gone" for p in _recorded(folder)}
    urls_file = folder / "stack.json"
    if not procs or not urls_file.is_file():
        return {"up": False, "dir": str(folder)}
    urls = json.loads(urls_file.read_text())
    checks: dict[str, Any] = {}
    for name, url in [("mlflow", urls["mlflow"] + "/health"), ("balancer", urls["stats"]),
                      *((f"replica{i}", u + "/ready") for i, u in
                        enumerate(urls["replicas"], 1))]:
        try:
            checks[name] = httpx.get(url, timeout=2.0, trust_env=False).status_code
        except httpx.HTTPError as exc:
            checks[name] = type(exc).__name__
    return {"up": all(v == "running" for v in procs.values()), "processes": procs,
            "http": checks, **urls}


def _recorded(folder: Path) -> list[dict[str, Any]]:
    path = folder / "pids.json"
    return json.loads(path.read_text()) if path.is_file() else []


def _alive(proc: dict[str, Any]) -> bool:
    """The recorded process still runs and is the one recorded (same kernel start time)."""
    return proc_start_time(int(proc["pid"])) == proc["started"]


def _stop(proc: dict[str, Any]) -> str:
    pid = int(proc["pid"])
    if not _alive(proc):
        return "already gone" if not group_alive(pid) else _kill_group(pid)
    os.killpg(pid, getattr(signal, proc["signal"]))
    deadline = time.monotonic() + GRACE_S
    while group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return "stopped" if not group_alive(pid) else _kill_group(pid)


def _kill_group(pgid: int) -> str:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    return "killed (SIGKILL after the grace period)"
