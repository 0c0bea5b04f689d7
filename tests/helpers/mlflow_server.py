"""A real `atr mlflow` server (the command operators run) on a test registry's runtime
folder, with MLflow authentication and ATR's approval rules on, and accounts made the way
an operator makes them (`atr mlflow-user`, atr.registry.accounts)."""

from __future__ import annotations

import os
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from atr.config import compose
from atr.demo_service import free_port
from atr.processes import ChildGroup
from atr.registry.accounts import ensure_account
from atr.registry.auth_config import admin_credentials
from atr.registry.tracking import mlflow_login
from helpers.registry import Registry

ATR = Path(sys.executable).parent / "atr"
REPO = Path(__file__).resolve().parents[2]
# role -> (account, password) the tests log in with
ACCOUNTS = {"reviewer": ("rita-reviewer", "rita-reviewer-pw-1"),
            "service": ("jobs-service", "jobs-service-pw-1"),
            "reader": ("line-reader", "line-reader-pw-1")}


@dataclass
class MlflowServer:
    registry: Registry
    port: int = field(default_factory=free_port)
    auth: bool = True
    group: ChildGroup | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def overrides(self) -> list[str]:
        return [*self.registry.overrides, f"mlflow.port={self.port}",
                f"mlflow.auth.enabled={str(self.auth).lower()}"]

    @property
    def log(self) -> Path:
        return self.registry.root / f"mlflow-{self.port}.log"

    def start(self, timeout_s: float = 120.0) -> MlflowServer:
        """`atr mlflow` as an operator starts it; waits until /health answers."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.group = ChildGroup([str(ATR), "mlflow", *self.overrides], cwd=REPO,
                                    env=os.environ.copy(), stdout=out,
                                    stderr=out).start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.group.poll() is not None:
                raise RuntimeError(f"atr mlflow exited {self.group.poll()}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2, trust_env=False).is_success:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"{self.url}/health not up in {timeout_s} s:\n{self.output()}")

    def add_accounts(self) -> None:
        """The three roles' accounts (ACCOUNTS), as `atr mlflow-user NAME --role R` does."""
        cfg = compose("mlflow", self.overrides)
        for role, (name, password) in ACCOUNTS.items():
            ensure_account(self.url, admin_credentials(cfg), name, password, role,
                           self.registry_name)

    @property
    def registry_name(self) -> str:
        from helpers.registry import NAME

        return NAME

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.is_file() else ""

    def stop(self) -> None:
        if self.group is not None:
            self.group.stop(grace_s=20)


def env_for(role: str) -> dict[str, str]:
    """The MLflow client's environment for the `role` account."""
    name, password = ACCOUNTS[role]
    return {"MLFLOW_TRACKING_USERNAME": name, "MLFLOW_TRACKING_PASSWORD": password}


def logged_in(role: str) -> AbstractContextManager[None]:
    """This process's MLflow client as the `role` account (restored on exit)."""
    return mlflow_login(*ACCOUNTS[role])
