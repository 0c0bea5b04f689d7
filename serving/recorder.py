"""Durable writes to the prediction store: a micro-batch's rows in one transaction.

The caller replies only after `write` returns: with SQLite (WAL, synchronous=FULL) or
PostgreSQL, a committed row survives a crash of the service or the machine, so every
acknowledged decision is in the store. One commit per batch, not per item: the fsync is
the costly part, and it is shared.

Idempotent item ids: a scanner's item has one decision of record. The batch is inserted
with ON CONFLICT DO NOTHING on (scanner_id, item_id, resend_seq) (migration 0002), so the
hot path reads nothing; only the rows that conflicted — a resend after a timeout, or two
posts of the same item at once, in one batch or on two replicas — are read back, in the
same transaction, and returned as the stored decision (`replay`). On PostgreSQL a
conflicting insert waits for the other transaction's commit, so both posts get its row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from atr.store.prediction_store import Feedback, Prediction, open_store


class PredictionRecorder:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sessions: sessionmaker[Session] = open_store(url)
        dialect = self.sessions.kw["bind"].dialect.name
        if dialect not in _INSERTS:
            raise ValueError(f"prediction store {url}: {dialect} has no INSERT ... ON CONFLICT "
                             "here (SQLite or PostgreSQL)")
        table = Prediction.__table__  # Core, not the ORM's bulk path: less per row
        self._insert = (_INSERTS[dialect](table)
                        .on_conflict_do_nothing(index_elements=_ITEM_KEY)
                        .returning(table.c.request_id))

    def write(self, rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Store the rows in one transaction; {request_id: the stored row, `replay` True}
        for each row whose scanner and item already had a decision (not inserted)."""
        if not rows:
            return {}
        with self.sessions.begin() as session:
            inserted = set(session.connection().execute(self._insert, list(rows)).scalars())
            resent = [r for r in rows if r["request_id"] not in inserted]
            if not resent:
                return {}
            keys = {(r["scanner_id"], r["item_id"]) for r in resent}
            stored = {(p.scanner_id, p.item_id): p for p in session.scalars(
                select(Prediction).where(tuple_(Prediction.scanner_id, Prediction.item_id)
                                         .in_(sorted(keys)), Prediction.resend_seq == 0))}
        out: dict[str, dict[str, Any]] = {}
        for row in resent:
            hit = stored.get((row["scanner_id"], row["item_id"]))
            if hit is None:  # cannot happen under the unique index; never acknowledge it
                raise RuntimeError(f"prediction {row['request_id']}: conflict without a "
                                   "stored decision")
            out[row["request_id"]] = {**_as_row(hit), "replay": True}
        return out

    def has_item(self, item_id: str) -> bool:
        with self.sessions() as session:
            hit = session.execute(
                select(Prediction.id).where(Prediction.item_id == item_id).limit(1)).first()
            return hit is not None

    def add_feedback(self, item_id: str, labels: dict[str, int], source: str, who: str,
                     at: Any) -> int | None:
        """Store feedback for a decided item; None (nothing written) when the item is unknown.

        The existence check and the insert share one transaction, so feedback is never
        written for an item that has no prediction.
        """
        with self.sessions.begin() as session:
            hit = session.execute(
                select(Prediction.id).where(Prediction.item_id == item_id).limit(1)).first()
            if hit is None:
                return None
            row = Feedback(item_id=item_id, labels=labels, source=source, who=who, at=at)
            session.add(row)
            session.flush()
            return int(row.id)

    def close(self) -> None:
        engine = self.sessions.kw.get("bind")
        if engine is not None:
            engine.dispose()


_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
_ITEM_KEY = ["scanner_id", "item_id", "resend_seq"]  # uq_predictions_scanner_item


def _as_row(p: Prediction) -> dict[str, Any]:
    return {c.key: getattr(p, c.key) for c in Prediction.__mapper__.column_attrs}
