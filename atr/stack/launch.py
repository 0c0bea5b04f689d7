"""Starting the stack's servers: each the leader of its own process group (atr.processes'
ChildGroup stops the whole group), output appended to its log file.

Attached (the tests, the benchmark): ChildGroup.start, whose children get SIGTERM when
the process that started them dies, even by SIGKILL, so a killed test run leaves no
server behind. Detached (`atr stack up`): the same group, without that tie, so the
servers outlive the command; `atr stack down` stops them from the recorded pids.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from atr.processes import ChildGroup


def launch(cmd: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None,
           cwd: Path | None = None, grace_s: float = 20.0,
           detached: bool = False) -> ChildGroup:
    log = open(log_path, "ab")  # noqa: SIM115 - the child holds it
    try:
        child = ChildGroup(cmd, env=env, cwd=cwd, stdout=log, stderr=log, grace_s=grace_s)
        if not detached:
            return child.start()
        child.proc = subprocess.Popen(child.cmd, env=child.env, cwd=cwd, stdout=log,
                                      stderr=log, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        return child
    finally:
        log.close()
