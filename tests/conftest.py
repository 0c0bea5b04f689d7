"""Shared fixtures: an isolated runtime folder and small simulated datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

from atr.data.synth import make_dataset

REPO = Path(__file__).resolve().parent.parent


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
