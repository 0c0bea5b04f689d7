"""The distributed stack in tests (tests/stack): its spec on free ports, a tiny model
registered through its MLflow server (artifacts on S3) as @champion, and a load generator
that posts scans through the load balancer and records every answer."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest

from atr.config import compose
from atr.demo_service import UNLIMITED, free_port
from atr.package import approval
from atr.stack.stack import Stack, StackSpec
from helpers.packages import build_package
from helpers.registry import runtime_overrides
from helpers.service import RULES_OFF

TOOLS = {"haproxy": Path("/usr/sbin/haproxy"),
         "postgres": Path("/usr/lib/postgresql/15/bin/postgres")}


def needs_tools() -> None:
    missing = [name for name, path in TOOLS.items() if not path.is_file()]
    if missing:  # `make test` installs them (Makefile debian-tools)
        pytest.skip(f"Debian packages missing: {missing} (make debian-tools)")


def register_champion(stack: Stack, root: Path) -> str:
    """A tiny package registered through the stack's MLflow server by the jobs' service
    account, then approved @champion as an unattended job on the stack approves (stack.env:
    the service login plus ATR_REVIEWER_*, `reviewer_from_env`): the server (atr-auth)
    writes the approval record naming the reviewer; the replicas serve only such a version."""
    from atr.registry.approve import approve
    from atr.registry.register import register_package
    from atr.stack.tracking import ACCOUNTS, REVIEWER_ENV, logged_in, reviewer_from_env

    package = build_package(root / "package", seed=0)
    url = stack.spec.mlflow_url
    base = [*runtime_overrides(root), f"paths.tracking_uri={url}", f"paths.registry_uri={url}",
            "paths.mlflow_artifacts=null"]
    cfg = compose("register", [*base, f"register.eval_dir={package / 'artifacts' / 'eval'}"])
    approve_cfg = compose("approve", [*base, f"approve.download_dir={root / 'approve'}"])
    env = stack.env()
    try:
        with logged_in(stack.secrets, "service"):
            version = str(register_package(package, cfg).version)
            os.environ.update({k: env[k] for k in REVIEWER_ENV})
            with reviewer_from_env() as reviewer:
                assert reviewer == ACCOUNTS["reviewer"]
                approved = approve(approve_cfg, version=version, mode="auto-simulation")
            assert os.environ["MLFLOW_TRACKING_USERNAME"] == ACCOUNTS["service"]  # restored
    finally:
        for key in REVIEWER_ENV:
            os.environ.pop(key, None)
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    assert approved.tags[approval.APPROVED_BY] == ACCOUNTS["reviewer"]
    assert approved.tags[approval.RECORDED_BY] == "server"
    return version


def stack_spec(folder: Path, **kw: Any) -> StackSpec:
    return StackSpec(dir=folder, postgres_port=free_port(), s3_port=free_port(),
                     mlflow_port=free_port(), balancer_port=free_port(),
                     stats_port=free_port(), replica_ports=(free_port(), free_port()),
                     replica_overrides=(*RULES_OFF, *UNLIMITED, "serve.uncovered_safe_mode=false",
                                        "serve.intra_op_threads=1"),
                     scanners=("S1",), **kw)


def wait_balanced(stack: Stack, timeout_s: float = 30.0) -> None:
    """Until HAProxy's checks have every replica UP."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        up = stack.balancer.servers_up()
        if up and all(up.values()):
            return
        time.sleep(0.2)
    raise TimeoutError(f"HAProxy does not see every replica UP: {stack.balancer.servers_up()}")


@dataclass
class Shot:
    item_id: str
    status: int  # 0: no HTTP answer at all
    body: Any = None
    at: float = 0.0


@dataclass
class Load:
    """Threads posting scans through `url` until stopped; every answer recorded."""

    url: str
    threads: int = 8
    prefix: str = "load"
    image: bytes = b""
    key: str = ""  # the scanner key (X-API-Key)
    shots: list[Shot] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for t in range(self.threads):
            worker = threading.Thread(target=self._run, args=(t,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(60)

    def _run(self, t: int) -> None:
        with httpx.Client(base_url=self.url, timeout=20.0, trust_env=False) as client:
            i = 0
            while not self._stop.is_set():
                item = f"{self.prefix}-{t}-{i}"
                i += 1
                try:
                    r = client.post("/v1/scans", content=self.image,
                                    params={"item_id": item, "scanner_id": "S1"},
                                    headers={"Content-Type": "image/png",
                                             "X-API-Key": self.key})
                    try:
                        body = r.json()
                    except ValueError:
                        body = r.text[:200]
                    shot = Shot(item, r.status_code, body, time.monotonic())
                except httpx.HTTPError as exc:
                    shot = Shot(item, 0, repr(exc), time.monotonic())
                with self._lock:
                    self.shots.append(shot)

    def wait_for(self, n: int, timeout_s: float = 60.0) -> None:
        """Until at least `n` answers came back (the load is really running)."""
        deadline = time.monotonic() + timeout_s
        while len(self.shots) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.shots) >= n, f"only {len(self.shots)} answers in {timeout_s} s"
