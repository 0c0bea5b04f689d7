"""`atr serve` as a child process on a free loopback port (for the demo, drills and tests).

`LoopbackService` is the one way this project starts the service out of process: the
command `python -m atr.cli serve <overrides> serve.port=<free port>`, stdout and stderr in
a log file, then a wait until `/ready` (or `/health`) answers 200. `ServiceProcess` builds
its overrides from a job config (the demo and the archive drills) and issues the keys its
callers need into the runtime's keys file (`issue_keys`); the tests' `Server`
(tests/helpers/service.py) starts from a test registry.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx
from omegaconf import DictConfig, OmegaConf

from atr.processes import ChildGroup

LOG_TAIL_CHARS = 4000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackService:
    """`python -m atr.cli serve *overrides` on 127.0.0.1:`port`; a context manager.

    overrides: Hydra overrides of the serve config (runtime paths, poll interval...);
        `serve.port` is added.
    log: file that receives the child's stdout and stderr (appended).
    """

    def __init__(self, overrides: Sequence[str], log: Path, *,
                 port: int | None = None, start_timeout_s: float = 120.0,
                 cwd: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.cmd = [sys.executable, "-m", "atr.cli", "serve", *overrides,
                    f"serve.port={self.port}"]
        self.env = {**os.environ, **(env or {})}
        self.log = Path(log)
        self.cwd = cwd
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.group: ChildGroup | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_path: str = "/ready", timeout: float | None = None) -> LoopbackService:
        """Start the child and wait until `wait_path` answers 200; a child that exits or
        never answers is stopped and reported with the tail of its log."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            # its own process group: stopping it stops anything it started, too
            self.group = ChildGroup(self.cmd, cwd=self.cwd, env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT).start()
        self.proc = self.group.proc
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
        """SIGKILL to its group, as a crash would (no shutdown handlers run)."""
        if self.group is not None:
            self.group.kill()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to its group (graceful shutdown), SIGKILL after `timeout`."""
        if self.group is not None:
            self.group.stop(grace_s=timeout)

    def __enter__(self) -> LoopbackService:
        return self.start() if self.proc is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def config_overrides(cfg: DictConfig, poll_seconds: float) -> list[str]:
    """The serve overrides that keep the child on the caller's runtime folders and model,
    and on any store the caller names outright (paths=stack: PostgreSQL, S3, MLflow)."""
    from atr.config import only, runtime_overrides

    return [f"serve.poll_seconds={poll_seconds}",
            f"registry.model_name={cfg.registry.model_name}",
            *only(runtime_overrides(cfg), "paths.")]


@dataclass(frozen=True)
class ServiceKeys:
    """One key per role, as `atr keys issue` would give them (the tokens themselves)."""
    scanner: str
    inspection: str
    analyst: str
    operator: str

    def line_overrides(self) -> list[str]:
        """What `atr line` sends with: the scan key and both feedback keys."""
        return [f"line.api_key={self.scanner}", f"line.inspection_key={self.inspection}",
                f"line.analyst_key={self.analyst}"]


def issue_keys(keys_file: Path, scanners: Sequence[str], prefix: str,
               tokens: Mapping[str, str] | None = None) -> ServiceKeys:
    """A key per role into `keys_file` (named <prefix>-<role>, replacing keys of those
    names): the scanner key for `scanners`. `tokens`: fixed keys (tests), else random."""
    from serving.keys import ROLES, add_key

    issued = {role: add_key(Path(keys_file), f"{prefix}-{role}", role,
                            tuple(scanners) if role == "scanner" else (),
                            token=(tokens or {}).get(role), replace=True)[0]
              for role in ROLES}
    return ServiceKeys(**issued)


# The demo's line runs closed-loop, as fast as the service answers, and keys in every
# verdict at once: its keys are not what a rate limit is for (the defaults suit a belt).
UNLIMITED = [f"serve.rate_limits.{role}.{k}={v}" for role in ("scanner", "inspection", "analyst")
             for k, v in (("rate", 100000), ("burst", 100000))]


class ServiceProcess(LoopbackService):
    """Starts `atr serve` with the caller's runtime paths (a job config); stops it on exit.
    The log is `<paths.root>/serve.log`.

    The job owns that runtime, so its prediction store (paths.prediction_db) is upgraded
    first, as `atr store upgrade` would: `atr serve` itself never creates tables. It issues
    fresh keys (`self.keys`) into paths.keys_file: the scanner key for `scanners`."""

    def __init__(self, cfg: DictConfig, scanners: Sequence[str], poll_seconds: float = 2.0,
                 start_timeout_s: float = 120.0, key_prefix: str = "demo") -> None:
        root = Path(str(OmegaConf.select(cfg, "paths.root")))
        keys_file = Path(str(OmegaConf.select(cfg, "paths.keys_file")))
        super().__init__([*config_overrides(cfg, poll_seconds), f"serve.keys_file={keys_file}",
                          *UNLIMITED], root / "serve.log", start_timeout_s=start_timeout_s)
        self.store_url = str(OmegaConf.select(cfg, "paths.prediction_db"))
        self.keys = issue_keys(keys_file, scanners, key_prefix)

    def start(self, wait_path: str = "/ready", timeout: float | None = None) -> ServiceProcess:
        from atr.store.migrations import upgrade

        upgrade(self.store_url)
        super().start(wait_path, timeout)
        return self

    def __enter__(self) -> ServiceProcess:
        super().__enter__()
        return self
