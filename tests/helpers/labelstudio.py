"""One real Label Studio server for the whole test session (its start is the cost).

Its own venv (`.venv-labelstudio`, installed on demand: ~90 s on a fresh clone), a data
folder and document root in the session's tmp dir, so every test's image store (under its
tmp_path) is servable as local files; each test uses a project of its own.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from atr.labels.labelstudio_server import LabelStudioServer, ensure_venv
from atr.processes import ChildGroup

REPO = Path(__file__).resolve().parents[2]
# The one pin and venv the platform uses (conf/labels.yaml), not a copy.
_CONF = yaml.safe_load((REPO / "conf" / "labels.yaml").read_text())["labels"]["labelstudio"]
VERSION = str(_CONF["version"])
VENV = REPO / _CONF["venv"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prefetch_venv() -> None:
    """Install the venv now, if missing; a failure is left for the fixture to report."""
    try:
        ensure_venv(VENV, VERSION)
    except Exception as exc:  # the fixture's own ensure_venv raises it again, in a test
        print(f"\nLabel Studio venv prefetch failed: {exc}")


def running_labelstudio(base: Path) -> Iterator[LabelStudioServer]:
    server = LabelStudioServer(VENV, VERSION, base / "labelstudio",
                               base, free_port())
    server.data_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    child: ChildGroup = server.start(server.data_dir / "server.log")
    print(f"\nLabel Studio up at {server.url} in {time.monotonic() - started:.1f} s")
    try:
        yield server
    finally:
        child.stop()


def overrides(server: LabelStudioServer, runtime: Path, project: str) -> list[str]:
    """`atr labels` overrides for a job against this server, one project per test."""
    return [f"paths.root={runtime}", f"paths.data_dir={runtime.parent / 'data'}",
            f"labels.labelstudio.url={server.url}",
            f"labels.labelstudio.credentials={server.credentials_path}",
            f"labels.labelstudio.project={project}",
            f"labels.image_root={server.document_root}"]
