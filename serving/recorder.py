"""Durable writes to the prediction store: a micro-batch's rows in one transaction.

The caller replies only after `write` returns: with SQLite (WAL, synchronous=FULL) or
PostgreSQL, a committed row survives a crash of the service or the machine, so every
acknowledged decision is in the store. One commit per batch, not per item: the fsync is
the costly part, and it is shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from atr.store.prediction_store import Feedback, Prediction, open_store


class PredictionRecorder:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sessions: sessionmaker[Session] = open_store(url)

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        with self.sessions.begin() as session:
            session.execute(insert(Prediction), list(rows))

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
