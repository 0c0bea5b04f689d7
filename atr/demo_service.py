"""`atr serve` as a child process on a free loopback port (for the demo and drills)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx
from omegaconf import DictConfig, OmegaConf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    """Starts `python -m atr.cli serve` with the caller's runtime paths; stops it on exit."""

    def __init__(self, cfg: DictConfig, api_key: str, poll_seconds: float = 2.0,
                 start_timeout_s: float = 120.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        paths = OmegaConf.to_container(cfg.paths, resolve=True)
        self.cmd = [sys.executable, "-m", "atr.cli", "serve", f"serve.port={self.port}",
                    f"serve.poll_seconds={poll_seconds}",
                    f"registry.model_name={cfg.registry.model_name}",
                    *(f"paths.{k}={paths[k]}" for k in ("root", "data_dir", "artifacts_dir"))]
        self.env = {**os.environ, "ATR_API_KEYS": api_key}
        self.log = Path(str(paths["root"])) / "serve.log"
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServiceProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=log, stderr=log)
        deadline = time.time() + self.start_timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"atr serve exited ({self.proc.returncode}); see {self.log}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.__exit__(None, None, None)
        raise TimeoutError(f"atr serve not ready in {self.start_timeout_s:.0f} s; see {self.log}")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
