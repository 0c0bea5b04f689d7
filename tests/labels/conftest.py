"""A real prediction store (SQLite in tmp_path) and a real image store, filled per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from labels_fixtures import Line
from sqlalchemy.orm import Session, sessionmaker

from atr.policy.taxonomy import Taxonomy, default_taxonomy
from atr.store.image_store import ImageStore
from atr.store.prediction_store import ensure_store


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return default_taxonomy()


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    return tmp_path / "runtime"


@pytest.fixture
def sessions(runtime: Path) -> sessionmaker[Session]:
    return ensure_store(f"sqlite:///{runtime / 'predictions' / 'predictions.db'}")


@pytest.fixture
def images(runtime: Path) -> ImageStore:
    return ImageStore(runtime / "images")


@pytest.fixture
def line(sessions: sessionmaker[Session], images: ImageStore) -> Line:
    return Line(sessions, images)
