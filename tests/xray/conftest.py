from __future__ import annotations

import numpy as np
import pytest
import yaml

from atr.config import conf_dir
from atr.policy.taxonomy import Taxonomy, default_taxonomy
from atr.xray import ClassMix, XraySimulator, load_profile
from atr.xray.materials import MATERIAL_INDEX, MATERIAL_NAMES


def _load_mix(name: str = "default") -> ClassMix:
    with open(conf_dir() / "mix" / f"{name}.yaml") as fh:
        return ClassMix.from_dict(yaml.safe_load(fh))


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return default_taxonomy()


@pytest.fixture(scope="session")
def sim(taxonomy) -> XraySimulator:
    return XraySimulator(load_profile("parcel_160kv"), taxonomy, _load_mix(), image_size=128)


def _slab(material: str, thickness: float, size: int = 64) -> np.ndarray:
    stack = np.zeros((len(MATERIAL_NAMES), size, size), dtype=np.float32)
    stack[MATERIAL_INDEX[material], size // 4: 3 * size // 4, size // 4: 3 * size // 4] = thickness
    return stack


@pytest.fixture(scope="session")
def slab():
    """slab(material, cm): a uniform slab over the middle of a 64 px image (edges stay air)."""
    return _slab


@pytest.fixture(scope="session")
def load_mix():
    """load_mix(name="default") -> ClassMix from conf/mix/<name>.yaml."""
    return _load_mix
