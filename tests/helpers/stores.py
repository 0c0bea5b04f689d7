"""The service's prediction store read straight from its SQLite file (not through the
code under test)."""

from __future__ import annotations

import sqlite3
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
