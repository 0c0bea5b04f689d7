"""Loads the serving tests' registry and server helpers (tests/serving/conftest.py) by path,
so the browser test starts `atr serve` exactly as the serving tests do."""

from __future__ import annotations

from types import ModuleType

import pytest
from helpers.serving_loader import serving_fixtures


@pytest.fixture
def serving_fx() -> ModuleType:
    return serving_fixtures()
