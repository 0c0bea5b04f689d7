"""Fixtures for the dataset tests: the default taxonomy and scanner-like images."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.images import make_image

from atr.policy.taxonomy import Taxonomy, default_taxonomy


@pytest.fixture
def taxonomy() -> Taxonomy:
    return default_taxonomy()


@pytest.fixture
def image_factory() -> Callable[[Path, str], Path]:
    return make_image


def leftovers(parent: Path) -> list[str]:
    """Hidden temp/aside folders a writer may have left beside its target."""
    return sorted(n for n in os.listdir(parent) if n.startswith("."))


@pytest.fixture
def no_leftovers() -> Callable[[Path], list[str]]:
    return leftovers
