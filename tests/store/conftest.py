"""The store tests run on both engines the store supports: SQLite (the embedded default)
and a real PostgreSQL 15 (the replicas' shared store), started once per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.stores import fresh_database, running_postgres


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_postgres(tmp_path_factory.mktemp("pg") / "data") as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each engine (no table)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'predictions.db'}"
    return fresh_database(request.getfixturevalue("postgres"))
