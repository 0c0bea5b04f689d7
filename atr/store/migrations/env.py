"""Alembic environment of the prediction store: the connection comes from the caller
(atr.store.migrations.upgrade builds the Config in code and passes it in), the target
metadata is the store's schema module, so `alembic revision --autogenerate` compares a
store against atr.store.prediction_store."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from atr.store.prediction_store import Base

config = context.config
connection = config.attributes.get("connection")


def _run(conn) -> None:  # noqa: ANN001 - alembic's Connection
    context.configure(connection=conn, target_metadata=Base.metadata,
                      render_as_batch=conn.dialect.name == "sqlite",
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # `alembic -x url=...` from a shell (autogenerate): see docs/store.md
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
