"""A store created by an older ATR is refused at open, naming the missing columns, instead
of failing on the line's first insert (every decision would be a 503)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from atr.store.prediction_store import StoreSchemaError, open_store


def test_older_store_is_refused_with_the_missing_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    open_store(f"sqlite:///{db}")  # today's schema opens
    with sqlite3.connect(db) as conn:  # as a store from before audits were recorded
        conn.execute("DROP INDEX ix_predictions_audit")
        conn.execute("ALTER TABLE predictions DROP COLUMN audit")
        conn.execute("ALTER TABLE predictions DROP COLUMN would_be")
    with pytest.raises(StoreSchemaError, match=r"predictions\.would_be.*predictions\.audit|"
                                               r"predictions\.audit.*predictions\.would_be"):
        open_store(f"sqlite:///{db}")
