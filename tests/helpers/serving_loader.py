"""The serving tests' registry and server helpers (tests/serving/conftest.py), loaded by
path under one module name, so the line and browser suites start `atr serve` exactly as
the serving tests do (a plain `import conftest` would clash between suites)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def serving_fixtures() -> ModuleType:
    name = "atr_tests_serving_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests/serving/conftest.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
