"""Fixtures for the dataset tests: the default taxonomy and scanner-like images."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atr.policy.taxonomy import Taxonomy, default_taxonomy

# The shapes real scanners and public datasets deliver (kind -> (width, height)).
IMAGE_KINDS = {
    "gray8": (320, 300),
    "gray16": (300, 340),
    "rgb_jpeg": (400, 310),
    "rgba": (310, 320),
    "wide": (3000, 300),
}


def _pixels(kind: str, width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(len(kind))
    if kind == "gray8":
        return Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8))
    if kind == "gray16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if kind == "rgba":
        return Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8))
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def make_image(path: Path, kind: str) -> Path:
    """Write an image of `kind` (IMAGE_KINDS) at `path`; the suffix is forced to fit."""
    width, height = IMAGE_KINDS[kind]
    path = path.with_suffix(".jpg" if kind == "rgb_jpeg" else ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    _pixels(kind, width, height).save(path)
    return path


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
