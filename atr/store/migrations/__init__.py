"""Schema migrations of the prediction store (Alembic; revisions in versions/).

Replicas never create or alter tables: `open_store` only checks that the store is at this
code's head revision. The store is created and moved forward by `upgrade(url)` — what
`atr store upgrade` runs, and what the jobs and demos that own an embedded store call
(atr.store.prediction_store.ensure_store). A store created by the ATR from before
migrations (its tables, no `alembic_version`) is stamped as revision 0001 when its columns
are 0001's, then upgraded. See docs/store.md.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import Connection, Engine

HERE = Path(__file__).resolve().parent
BASELINE = "0001"  # the schema of the ATR before migrations, exactly
VERSION_TABLE = "alembic_version"


class StoreSchemaError(ValueError):
    """The store's schema is not this code's: empty, older, newer, or not ATR's at all.
    A ValueError, so the CLI prints the message (it says what to run), no traceback."""


def config(connection: Connection | None = None) -> Config:
    """An Alembic Config built in code (no alembic.ini): scripts from this package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


@cache
def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    return str(script().get_current_head())


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: shown as given, nothing to hide
        return url


def revision_of(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def check(engine: Engine, url: str) -> None:
    """Refuse a store that is not at head, with what to run; nothing is changed."""
    with engine.connect() as conn:
        current = revision_of(conn)
        tables = set(inspect(conn).get_table_names())
    target = head()
    if current == target:
        return
    fix = f"run `atr store upgrade --url {safe_url(url)}`"
    where = f"prediction store {safe_url(url)}"
    if current is None and not tables - {VERSION_TABLE}:
        raise StoreSchemaError(f"{where} has no tables (schema {target} expected): {fix} "
                               "first (only `atr store upgrade` creates tables)")
    if current is None:
        raise StoreSchemaError(f"{where} was created by an ATR from before schema migrations "
                               f"(no {VERSION_TABLE}): {fix} (it is stamped {BASELINE}, "
                               f"then upgraded to {target})")
    if is_known(current):
        raise StoreSchemaError(f"{where} is at schema {current}, older than this code's "
                               f"{target}: {fix}")
    raise StoreSchemaError(f"{where} is at schema {current}, which this code does not know "
                           f"(its newest is {target}): it was upgraded by a newer ATR; run that "
                           "version (a store is never downgraded silently)")


def is_known(rev: str) -> bool:
    try:
        return script().get_revision(rev) is not None
    except Exception:  # alembic raises on unknown ids
        return False


def upgrade(url: str | Engine) -> tuple[str | None, str]:
    """Create or move the store to head; returns (revision before, revision after).

    A pre-migration store is stamped 0001 first if its columns are 0001's, else refused
    (its missing or extra columns named). A store newer than this code is refused."""
    from atr.store.prediction_store import make_engine

    engine = make_engine(url) if isinstance(url, str) else url
    shown = safe_url(url if isinstance(url, str) else str(engine.url))
    try:
        with engine.begin() as conn:
            before = revision_of(conn)
            if before is not None and not is_known(before):
                raise StoreSchemaError(
                    f"prediction store {shown} is at schema {before}, unknown to this code "
                    f"(newest {head()}): upgraded by a newer ATR; not touched")
            if before is None and set(inspect(conn).get_table_names()) - {VERSION_TABLE}:
                _check_baseline(conn, shown)
                command.stamp(config(conn), BASELINE)
            command.upgrade(config(conn), "head")
            after = revision_of(conn)
    finally:
        if isinstance(url, str):
            engine.dispose()
    return before, str(after)


def current(url: str) -> tuple[str | None, str]:
    """(the store's revision, this code's head); the store is not changed."""
    from atr.store.prediction_store import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return revision_of(conn), head()
    finally:
        engine.dispose()


def _check_baseline(conn: Connection, shown: str) -> None:
    """The legacy store's tables and columns must be exactly 0001's to be stamped."""
    expected = _baseline_columns()
    found = {t: {c["name"] for c in inspect(conn).get_columns(t)}
             for t in inspect(conn).get_table_names() if t in expected}
    missing = [f"{t}.{c}" for t, cols in expected.items() for c in sorted(cols)
               if c not in found.get(t, set())]
    extra = [f"{t}.{c}" for t, cols in found.items() for c in sorted(cols - expected[t])]
    if missing or extra:
        raise StoreSchemaError(
            f"prediction store {shown}: tables from an ATR before migrations that are not "
            f"schema {BASELINE}: missing {missing[:6] or 'none'}, "
            f"unexpected {extra[:6] or 'none'}; "
            "move it aside (a new store is created by `atr store upgrade`) or add the columns")


@cache
def _baseline_columns() -> dict[str, set[str]]:
    """0001's tables and columns, read from an in-memory store migrated to 0001."""
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        command.upgrade(config(conn), BASELINE)
        cols = {t: {c["name"] for c in inspect(conn).get_columns(t)}
                for t in inspect(conn).get_table_names() if t != VERSION_TABLE}
    engine.dispose()
    return cols
