"""atr/processes.py on real processes: an `atr` job stopped with SIGTERM leaves none of
the processes it started, also those that ignore SIGTERM (SIGKILL after the grace period).
(`atr mlflow` itself: tests/registry/test_server.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]


def _parent(script: str, tmp_path: Path) -> subprocess.Popen[str]:
    """A Python process running `script` (as an `atr` job would), its stdout piped."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True,
                            stderr=open(tmp_path / "parent.err", "w"))  # noqa: SIM115


def _wait_line(proc: subprocess.Popen[str], word: str, tmp_path: Path) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert word in line, f"{line!r}; stderr: {(tmp_path / 'parent.err').read_text()[-3000:]}"
    return line


def _kill(parent: subprocess.Popen[str], tree: list[psutil.Process]) -> None:
    """Clean up after a failure: only the processes this test started."""
    parent.kill()
    parent.wait(10)
    for p in tree:
        if p.is_running():
            p.kill()


def test_a_job_stopped_by_sigterm_stops_the_service_it_started(tmp_path: Path) -> None:
    # what `atr demo` / `atr archive-demo` do: exit_on_signals (atr.cli), then the service
    # child inside a context manager (atr.demo_service.LoopbackService)
    parent = _parent(f"""
        import time
        from pathlib import Path
        from atr.demo_service import LoopbackService
        from atr.processes import exit_on_signals
        from atr.store.migrations import upgrade
        exit_on_signals()
        root = Path({str(tmp_path / 'runtime')!r})
        (root / "predictions").mkdir(parents=True)
        upgrade(f"sqlite:///{{root}}/predictions/predictions.db")
        svc = LoopbackService([f"paths.root={{root}}", f"paths.data_dir={{root}}/d",
                               f"paths.artifacts_dir={{root}}/a"], root / "serve.log")
        try:
            svc.start("/health", timeout=120)
            print("up", svc.proc.pid, flush=True)
            time.sleep(600)
        finally:
            svc.stop()
        """, tmp_path)
    tree: list[psutil.Process] = []
    try:
        serve_pid = int(_wait_line(parent, "up", tmp_path).split()[1])
        tree = psutil.Process(parent.pid).children(recursive=True)
        assert serve_pid in {p.pid for p in tree}
        os.kill(parent.pid, signal.SIGTERM)
        assert parent.wait(30) == 128 + signal.SIGTERM
        gone, alive = psutil.wait_procs(tree, timeout=10)
        assert not alive, [(p.pid, p.cmdline()[:4]) for p in alive]
    finally:
        _kill(parent, tree)


def test_children_that_ignore_sigterm_are_killed_after_the_grace(tmp_path: Path) -> None:
    # run_foreground (`atr mlflow`): the child's whole group gets the signal, and whatever
    # ignores it is SIGKILLed once the grace period is over; nothing is orphaned
    parent = _parent("""
        from atr.processes import run_foreground
        print("start", flush=True)
        code = run_foreground(["sh", "-c", "trap '' TERM; sleep 300 & sleep 300"], grace_s=1.0)
        print("exit", code, flush=True)
        """, tmp_path)
    tree: list[psutil.Process] = []
    try:
        _wait_line(parent, "start", tmp_path)
        deadline = time.monotonic() + 10
        while len(tree := psutil.Process(parent.pid).children(recursive=True)) < 3:
            assert time.monotonic() < deadline, tree
            time.sleep(0.05)
        started = time.monotonic()
        os.kill(parent.pid, signal.SIGTERM)
        assert "exit 0" in _wait_line(parent, "exit", tmp_path)  # a requested stop
        assert parent.wait(10) == 0
        gone, alive = psutil.wait_procs(tree, timeout=5)
        assert not alive, [(p.pid, p.cmdline()) for p in alive]
        assert 0.9 < time.monotonic() - started < 8  # the grace, then SIGKILL
    finally:
        _kill(parent, tree)
