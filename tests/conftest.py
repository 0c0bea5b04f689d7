"""Shared fixtures: an isolated runtime folder and small simulated datasets."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from atr.data.synth import make_dataset

REPO = Path(__file__).resolve().parent.parent


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under pytest-xdist the controller runs no test: it installs Label Studio's venv
    (~90 s of pip on a fresh clone) in the background while the workers start on the long
    modules, so the worker that reaches the Label Studio tests does not wait for it (the
    fixture waits on the same file lock, atr/labels/labelstudio_server.py)."""
    if hasattr(session.config, "workerinput") or not session.config.option.numprocesses:
        return
    from helpers.labelstudio import prefetch_venv

    threading.Thread(target=prefetch_venv, name="labelstudio-venv", daemon=True).start()


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist (make test: -n 2)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    from helpers.suite_schedule import make_scheduler

    return make_scheduler(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """helpers/suite_schedule.py names the modules sharing the Label Studio server: one
    that is not named there would start a second server on the other worker."""
    from helpers.suite_schedule import LABELSTUDIO_MODULES

    for item in items:
        module = item.nodeid.split("::", 1)[0]
        if "labelstudio" in getattr(item, "fixturenames", ()) and module not in LABELSTUDIO_MODULES:
            raise pytest.UsageError(f"{module} uses the labelstudio fixture: name it in "
                                    "LABELSTUDIO_MODULES, tests/helpers/suite_schedule.py")


@pytest.fixture
def runtime_overrides(tmp_path: Path) -> list[str]:
    """Hydra overrides that keep every piece of runtime state inside tmp_path."""
    return [
        f"paths.root={tmp_path / 'runtime'}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.artifacts_dir={tmp_path / 'artifacts'}",
    ]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 simulated parcels at 64 px, all splits present (seconds to build)."""
    out = tmp_path_factory.mktemp("tiny") / "dataset"
    return make_dataset(out, count=120, image_size=64, seed=1, save_raw=True)


@pytest.fixture(scope="session")
def labelstudio(tmp_path_factory: pytest.TempPathFactory):
    """A real Label Studio on loopback, shared by every test that asks (tests/labels,
    tests/browser): started once, on first use (helpers/labelstudio.py)."""
    from helpers.labelstudio import running_labelstudio

    yield from running_labelstudio(tmp_path_factory.getbasetemp())
