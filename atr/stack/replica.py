"""One `atr serve` replica of the stack: its own process group, its own port and folder
(downloaded packages, log), the shared PostgreSQL store and S3 images."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from atr.processes import ChildGroup
from atr.stack.launch import launch


class Replica:
    """`python -m atr.cli serve` on 127.0.0.1:`port` with `overrides`; env adds secrets."""

    def __init__(self, name: str, run_dir: str | Path, port: int, overrides: Sequence[str],
                 env: Mapping[str, str], detached: bool = False) -> None:
        self.name, self.port = name, port
        self.run_dir = Path(run_dir)
        self.overrides = [*overrides, f"paths.root={self.run_dir}", "serve.host=127.0.0.1",
                          f"serve.port={port}"]
        self.env = {**os.environ, **env}
        self.log_path = self.run_dir / "serve.log"
        self.child: ChildGroup | None = None
        self.detached = detached

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "atr.cli", "serve", *self.overrides]

    def start(self, timeout_s: float = 120.0, path: str = "/health") -> Replica:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.child = launch(self.command(), self.log_path, env=self.env, grace_s=20,
                            detached=self.detached)
        self.wait(path, timeout_s)
        return self

    def wait(self, path: str = "/ready", timeout_s: float = 60.0) -> None:
        """Until `path` answers 200; RuntimeError (with the log's tail) if the replica exits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.child is None or self.child.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            try:
                if httpx.get(self.url + path, timeout=2.0, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} {self.url}{path} not 200 after {timeout_s:.0f} s:\n"
                           f"{self.tail()}")

    def kill(self) -> None:
        """SIGKILL the whole group, as a crash would (no shutdown handler runs)."""
        if self.child is not None:
            self.child.kill()

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"
