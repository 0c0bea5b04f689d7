"""A real `atr serve` (uvicorn on loopback) over a real MLflow SQLite registry, for the line.

The registry, tiny ONNX package and server helpers are the serving tests' own
(tests/serving/conftest.py), loaded by path so both suites start services the same way.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers.serving_loader import serving_fixtures


@pytest.fixture(scope="module")
def line_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """`atr serve` on a free port, serving v1 of a tiny package as @champion.
    API keys for feedback: test-key-1, test-key-2 (set by the serving helpers)."""
    fx = serving_fixtures()
    root = tmp_path_factory.mktemp("line-runtime")
    package = fx.build_package(tmp_path_factory.mktemp("line-pkg") / "package", seed=0)
    registry = fx.Registry(root=root, overrides=[
        f"paths.root={root}", f"paths.data_dir={root / 'data'}",
        f"paths.artifacts_dir={root / 'artifacts'}"])
    registry.register(package)
    registry.set_alias("champion", "1")
    server = fx.Server(registry, ["serve.poll_seconds=1"]).start()
    try:
        yield server
    finally:
        server.stop()
