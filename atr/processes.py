"""Child processes that never outlive the `atr` command that started them.

A server such as `mlflow server` forks workers (uvicorn's supervisor, one process per
worker). Signalling only the child's pid leaves those workers running, and a SIGTERM to
the `atr` process itself kills Python without running any `finally`, so nothing is stopped
at all. Here each child is started as the leader of its own process group (a new
session); stopping it signals the whole group: the stop signal first, then SIGKILL after a
grace period for whatever is still there. `atr` commands turn SIGTERM and SIGHUP into a
normal exit (`exit_on_signals`), so the context managers that own children stop them.

    with ChildGroup(cmd) as child:      # stopped (group) on leaving, also on an exception
        child.wait()
    code = run_foreground(cmd)          # `atr mlflow`: forwards SIGTERM/SIGINT/SIGHUP
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

log = logging.getLogger("atr.processes")

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
GRACE_S = 20.0  # MLflow's uvicorn workers and `atr serve` stop in ~1-3 s on SIGTERM


class ChildGroup:
    """`cmd` as the leader of a new process group; `stop()` ends the group, no orphan."""

    def __init__(self, cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
                 cwd: Path | str | None = None, stdout: IO[Any] | int | None = None,
                 stderr: IO[Any] | int | None = None, grace_s: float = GRACE_S) -> None:
        self.cmd = [str(c) for c in cmd]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.stdout, self.stderr = stdout, stderr
        self.grace_s = grace_s
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ChildGroup:
        # start_new_session: the child leads its own group (pgid == pid), so the group
        # outlives neither `stop()` nor its leader's death, and a terminal's Ctrl-C reaches
        # it only through us (forwarded once, not twice).
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdout=self.stdout,
                                     stderr=self.stderr, start_new_session=True,
                                     preexec_fn=_stop_with_parent)
        return self

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the child is not started")
        return self.proc.pid

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        if self.proc is None:
            raise RuntimeError("the child is not started")
        return self.proc.wait(timeout)

    def send(self, sig: int) -> None:
        """Send `sig` to every process of the group (a no-op once the group is gone)."""
        if self.proc is not None:
            _killpg(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, grace_s: float | None = None) -> int | None:
        """`sig` to the group, wait up to the grace period for the leader and its group,
        then SIGKILL the group. Returns the leader's exit code."""
        if self.proc is None:
            return None
        return stop_group(self.proc, sig, self.grace_s if grace_s is None else grace_s)

    def kill(self) -> None:
        """SIGKILL to the whole group (as a crash of the machine would, no handlers run)."""
        if self.proc is not None:
            _kill_group(self.proc)

    def __enter__(self) -> ChildGroup:
        return self.start() if self.proc is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def stop_group(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM,
               grace_s: float = GRACE_S) -> int | None:
    """Stop the process group `proc` leads (started with start_new_session=True): `sig`,
    up to `grace_s` for the leader and the rest of its group, then SIGKILL."""
    # Also when the leader is gone: workers it forked may still hold the group.
    _killpg(proc.pid, sig)
    deadline = time.monotonic() + grace_s
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop within %.0f s of signal %d: SIGKILL",
                    proc.args if isinstance(proc.args, str) else list(proc.args)[:4],
                    grace_s, sig)
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _kill_group(proc)
    return proc.returncode


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    _killpg(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a D-state process
        log.error("pid %d did not die on SIGKILL", proc.pid)


def _stop_with_parent() -> None:
    """In the child, before exec: SIGTERM it when its parent dies, even by SIGKILL (Linux
    prctl PR_SET_PDEATHSIG), so a killed `atr` still stops its server, which stops its
    workers. (Linux sends it when the *thread* that started the child ends: start
    long-lived children from the main thread, as every `atr` command does.)"""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` still exists (zombies of ours excluded by wait)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _killpg(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def run_foreground(cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
                   cwd: Path | str | None = None, grace_s: float = GRACE_S) -> int:
    """Run `cmd` until it exits; SIGTERM/SIGINT/SIGHUP to us go to its whole group, then
    the group is stopped (grace, SIGKILL). Returns the child's exit code, or 0 when it
    ended because we were asked to stop."""
    child = ChildGroup(cmd, env=env, cwd=cwd, grace_s=grace_s)
    received: list[tuple[int, float]] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append((signum, time.monotonic()))
        child.send(signum)

    code: int | None = None
    with _handlers(forward):
        child.start()
        try:
            # Waits in slices: once a stop was asked, a child that ignores it gets only the
            # grace period before the group is killed.
            while code is None and not (received and
                                        time.monotonic() - received[0][1] > grace_s):
                with suppress(subprocess.TimeoutExpired):
                    code = child.wait(timeout=0.2)
        finally:
            # the rest of the grace counted from the first signal, for workers still closing
            left = grace_s - (time.monotonic() - received[0][1]) if received else grace_s
            child.stop(received[0][0] if received else signal.SIGTERM, grace_s=max(0.0, left))
    return 0 if received or code is None else code


@contextmanager
def _handlers(handler: Any) -> Iterator[None]:
    previous = {sig: signal.signal(sig, handler) for sig in FORWARDED}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def exit_on_signals() -> None:
    """SIGTERM and SIGHUP raise SystemExit(128 + signum) once, like Ctrl-C raises
    KeyboardInterrupt: `finally` blocks and context managers run and stop the children.
    (Python's default for SIGTERM ends the process at once and orphans them.)"""
    def raise_exit(signum: int, frame: FrameType | None) -> None:
        # A second signal while cleaning up must not cut the cleanup short.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, raise_exit)
