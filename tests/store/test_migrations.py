"""Schema migrations on both engines: `atr store upgrade` creates and moves a store; a
replica (open_store, create_app, `atr serve`) never creates nor alters tables and refuses a
store that is not at this code's head, saying what to run; a store of the ATR from before
migrations is stamped 0001 and upgraded, its rows kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from atr.cli import main
from atr.store import migrations
from atr.store.migrations import StoreSchemaError, head, upgrade
from atr.store.prediction_store import Base, ensure_store, make_engine, open_store


def _migrate_to(url: str, revision: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(migrations.config(conn), revision)
    engine.dispose()


def _sql(url: str, *statements: str) -> list:
    engine = create_engine(url)
    out = []
    with engine.begin() as conn:
        for st in statements:
            res = conn.execute(text(st))
            out = list(res) if res.returns_rows else out
    engine.dispose()
    return out


def test_upgrade_from_empty_matches_the_models(empty_url: str, capsys) -> None:
    with pytest.raises(StoreSchemaError, match="has no tables.*atr store upgrade --url"):
        open_store(empty_url)
    assert main(["store", "upgrade", "--url", empty_url]) == 0
    assert f'"after": "{head()}"' in capsys.readouterr().out
    assert migrations.current(empty_url) == (head(), head())
    open_store(empty_url)  # a replica now opens it
    engine = create_engine(empty_url)
    with engine.connect() as conn:  # the migrations build exactly what the models declare
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()
    assert upgrade(empty_url) == (head(), head())  # idempotent: nothing to do


def test_a_replica_refuses_an_older_store_naming_the_command(empty_url: str,
                                                             tmp_path: Path) -> None:
    _migrate_to(empty_url, "0002")
    with pytest.raises(StoreSchemaError) as err:
        open_store(empty_url)
    assert "schema 0002, older than this code's" in str(err.value)
    assert "`atr store upgrade --url " in str(err.value)
    with pytest.raises(StoreSchemaError, match="older than"):  # the serving app, as a replica
        from helpers.registry import registry_at
        from helpers.service import settings_for

        from serving.app import create_app

        create_app(settings_for(registry_at(tmp_path / "rt"), prediction_db=empty_url))
    columns = {c["name"] for c in inspect(create_engine(empty_url)).get_columns("predictions")}
    assert "image_pruned_at" not in columns  # nothing was altered by the refusals


def test_the_password_is_not_in_the_message(postgres) -> None:
    url = postgres.create_database("pwtest").replace("atr@", "atr:hunter2@")  # trust auth
    with pytest.raises(StoreSchemaError) as err:
        open_store(url)
    assert "hunter2" not in str(err.value) and "atr:***@" in str(err.value)


def test_a_store_newer_than_the_code_is_refused(empty_url: str) -> None:
    ensure_store(empty_url)
    _sql(empty_url, "UPDATE alembic_version SET version_num = '0999'")
    with pytest.raises(StoreSchemaError, match="0999, which this code does not know"):
        open_store(empty_url)
    with pytest.raises(StoreSchemaError, match="newer ATR; not touched"):
        upgrade(empty_url)


def test_serve_exits_with_the_message_on_an_empty_store(tmp_path: Path) -> None:
    """`atr serve` itself, as an operator starts it: no traceback, the command to run."""
    from atr.demo_service import LoopbackService

    db = tmp_path / "rt" / "predictions" / "predictions.db"
    service = LoopbackService([f"paths.root={tmp_path / 'rt'}"], tmp_path / "serve.log",
                              start_timeout_s=60)
    with pytest.raises(RuntimeError, match=r"exited \(1\)"):
        service.start("/health")
    assert f"run `atr store upgrade --url sqlite:///{db}`" in service.output()
    assert "Traceback" not in service.output()
    assert not sqlite3.connect(db).execute(  # no table was created by the replica
        "SELECT name FROM sqlite_master WHERE type='table'").fetchall()


def _pre_migration_store(url: str) -> None:
    """A store as the ATR before migrations left it: 0001's tables, no alembic_version,
    and the same item decided twice by one scanner (stored twice then)."""
    _migrate_to(url, "0001")
    rows = ", ".join(
        f"('{rid}', 'item-1', 'S1', '2026-11-0{d} 10:00:00', 'CLEAR', 'paper_only', "
        f"{'true' if url.startswith('postgresql') else 1})"
        for rid, d in (("r1", 1), ("r2", 2), ("r3", 3)))
    _sql(url, "DROP TABLE alembic_version",
         "INSERT INTO predictions (request_id, item_id, scanner_id, created_at, decision, "
         f"reason, audit) VALUES {rows}")
    _sql(url, "UPDATE predictions SET scanner_id = 'S2' WHERE request_id = 'r3'")


def test_a_pre_migration_store_is_stamped_then_upgraded(empty_url: str) -> None:
    _pre_migration_store(empty_url)
    with pytest.raises(StoreSchemaError, match="before schema migrations.*atr store upgrade"):
        open_store(empty_url)
    assert upgrade(empty_url) == (None, head())
    open_store(empty_url)
    rows = _sql(empty_url, "SELECT request_id, scanner_id, resend_seq FROM predictions "
                           "ORDER BY request_id")
    # every acknowledged row kept; the first of S1's two decisions is the one of record
    assert [tuple(r) for r in rows] == [("r1", "S1", 0), ("r2", "S1", 1), ("r3", "S2", 0)]


def test_a_pre_migration_store_with_other_columns_is_refused(empty_url: str) -> None:
    _pre_migration_store(empty_url)
    _sql(empty_url, "DROP INDEX ix_predictions_audit", "ALTER TABLE predictions DROP COLUMN audit")
    with pytest.raises(StoreSchemaError, match=r"not schema 0001: missing \['predictions.audit'\]"):
        upgrade(empty_url)
    assert migrations.current(empty_url)[0] is None  # not stamped: nothing was changed
