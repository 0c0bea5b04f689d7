"""`atr serve` as a child process on a free loopback port (for the demo, drills and tests).

`LoopbackService` is the one way this project starts the service out of process: the
command `python -m atr.cli serve <overrides> serve.port=<free port>`, API keys in
ATR_API_KEYS, stdout and stderr in a log file, then a wait until `/ready` (or `/health`)
answers 200. `ServiceProcess` builds its overrides from a job config (the demo and the
archive drills); the tests' `Server` (tests/helpers/service.py) from a test registry.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx
from omegaconf import DictConfig, OmegaConf

LOG_TAIL_CHARS = 4000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackService:
    """`python -m atr.cli serve *overrides` on 127.0.0.1:`port`; a context manager.

    overrides: Hydra overrides of the serve config (runtime paths, poll interval...);
        `serve.port` is added.
    api_keys: comma-separated keys the service accepts for feedback (ATR_API_KEYS).
    log: file that receives the child's stdout and stderr (appended).
    """

    def __init__(self, overrides: Sequence[str], api_keys: str, log: Path, *,
                 port: int | None = None, start_timeout_s: float = 120.0,
                 cwd: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.cmd = [sys.executable, "-m", "atr.cli", "serve", *overrides,
                    f"serve.port={self.port}"]
        self.env = {**os.environ, **(env or {}), "ATR_API_KEYS": api_keys}
        self.log = Path(log)
        self.cwd = cwd
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_path: str = "/ready", timeout: float | None = None) -> LoopbackService:
        """Start the child and wait until `wait_path` answers 200; a child that exits or
        never answers is stopped and reported with the tail of its log."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        try:
            self.wait(wait_path, self.start_timeout_s if timeout is None else timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait(self, path: str, timeout: float) -> None:
        """Poll `path` until it answers 200 (RuntimeError if the child exits first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"atr serve exited ({code}); {self.log}:\n{self.output()}")
            try:
                if httpx.get(self.url + path, timeout=1.0, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.url}{path} not 200 after {timeout:.0f} s; "
                           f"{self.log}:\n{self.output()}")

    def output(self) -> str:
        """The end of the child's log (what a failure message shows)."""
        if not self.log.is_file():
            return ""
        return self.log.read_text(errors="replace")[-LOG_TAIL_CHARS:]

    def kill(self) -> None:
        """SIGKILL, as a crash would (no shutdown handlers run)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (graceful shutdown), then SIGKILL if it does not exit in `timeout`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> LoopbackService:
        return self.start() if self.proc is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def config_overrides(cfg: DictConfig, poll_seconds: float) -> list[str]:
    """The serve overrides that keep the child on the caller's runtime folders and model."""
    paths = OmegaConf.to_container(cfg.paths, resolve=True)
    assert isinstance(paths, dict)
    return [f"serve.poll_seconds={poll_seconds}",
            f"registry.model_name={cfg.registry.model_name}",
            *(f"paths.{k}={paths[k]}" for k in ("root", "data_dir", "artifacts_dir"))]


class ServiceProcess(LoopbackService):
    """Starts `atr serve` with the caller's runtime paths (a job config); stops it on exit.
    The log is `<paths.root>/serve.log`."""

    def __init__(self, cfg: DictConfig, api_key: str, poll_seconds: float = 2.0,
                 start_timeout_s: float = 120.0) -> None:
        root = Path(str(OmegaConf.select(cfg, "paths.root")))
        super().__init__(config_overrides(cfg, poll_seconds), api_key, root / "serve.log",
                         start_timeout_s=start_timeout_s)

    def __enter__(self) -> ServiceProcess:
        super().__enter__()
        return self
