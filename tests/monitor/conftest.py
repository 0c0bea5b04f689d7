"""Fixtures of the monitor tests: a fresh SQLite prediction store per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from atr.store.prediction_store import ensure_store


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'predictions.db'}"


@pytest.fixture
def sessions(store_url: str):
    return ensure_store(store_url)
