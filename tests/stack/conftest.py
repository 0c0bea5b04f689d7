"""The distributed stack, real servers on loopback (atr.stack): PostgreSQL, SeaweedFS S3,
the MLflow server, two `atr serve` replicas behind HAProxy; a tiny model registered into
the stack's MLflow (artifacts on S3) and made @champion. Started once per module."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.stack import needs_tools, register_champion, stack_spec, wait_balanced

from atr.stack.stack import Stack


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    needs_tools()
    # Not under pytest's basetemp: a pytest session starting meanwhile (another checkout's)
    # resets pytest-of-<user> to 0700, and the `postgres` user would lose its data folder.
    folder = Path(tempfile.mkdtemp(prefix="atr-stack-"))
    running = Stack(stack_spec(folder / "stack"))
    try:
        running.start()
        register_champion(running, folder / "client")
        for replica in running.replicas:
            replica.wait("/ready", 90)
        wait_balanced(running)
        yield running
    finally:
        running.stop()
        shutil.rmtree(folder, ignore_errors=True)
