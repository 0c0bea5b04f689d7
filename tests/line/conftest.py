"""A real `atr serve` (uvicorn on loopback) over a real MLflow SQLite registry, for the line
(the tiny package, registry and launcher of tests/helpers, as the serving tests use)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers.packages import build_package
from helpers.registry import registry_at
from helpers.service import Server


@pytest.fixture(scope="module")
def line_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`atr serve` on a free port, serving v1 of a tiny package as @champion.
    API keys for feedback: test-key-1, test-key-2 (helpers.service.API_KEYS)."""
    registry = registry_at(tmp_path_factory.mktemp("line-runtime"))
    registry.register(build_package(tmp_path_factory.mktemp("line-pkg") / "package", seed=0))
    registry.set_alias("champion", "1")
    server = Server(registry, ["serve.poll_seconds=1"]).start()
    try:
        yield server
    finally:
        server.stop()
