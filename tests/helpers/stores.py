"""The service's prediction store read straight from its SQLite file (not through the
code under test), and a real PostgreSQL for the tests that need the shared engine."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PREDICTION_DB = "predictions/predictions.db"  # under the runtime folder (conf/paths)


def store_rows(runtime: Any, table: str = "predictions", db: str = PREDICTION_DB,
               order: str = "id") -> list[dict]:
    """Every row of `table`, in insertion order (or by `order`, for tables keyed by name).
    `runtime` is a runtime folder or anything with a `.root` (a test Registry) or
    `.registry.root` (a test Server)."""
    root = getattr(getattr(runtime, "registry", runtime), "root", runtime)
    with sqlite3.connect(Path(root) / db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY {order}")]


@contextmanager
def running_postgres(data_dir: Path) -> Iterator[Any]:
    """A real PostgreSQL 15 (atr.stack.postgres) in `data_dir` on a free loopback port,
    stopped on exit, also when the test failed."""
    from atr.demo_service import free_port
    from atr.stack.postgres import PostgresServer

    server = PostgresServer(data_dir, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def fresh_database(server: Any) -> str:
    """A new empty database on `server` (one per test: no state leaks between tests)."""
    return server.create_database(f"t{uuid.uuid4().hex[:12]}")
