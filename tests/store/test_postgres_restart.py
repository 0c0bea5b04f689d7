"""A PostgreSQL restart costs the store's users no restart of their own: the engine's
pre-ping replaces the dead pooled connections, so the first write after the restart lands
(atr.stack.postgres.PostgresServer.restart, the launcher the stack uses too)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from helpers.stores import running_postgres
from sqlalchemy import func, select

from atr.store.migrations import upgrade
from atr.store.prediction_store import Prediction
from serving.recorder import PredictionRecorder


def _row(item: str) -> dict:
    return dict(request_id=uuid.uuid4().hex, item_id=item, scanner_id="S1", decision="CLEAR",
                reason="paper_only", audit=False)


def test_writes_resume_after_a_restart_and_fail_loudly_while_down(tmp_path: Path) -> None:
    with running_postgres(tmp_path / "pg") as pg:
        url = pg.url()
        upgrade(url)
        recorder = PredictionRecorder(url)
        try:
            recorder.write([_row("before")])
            pg.stop()
            with pytest.raises(Exception, match="(?i)connect|server|closed"):
                recorder.write([_row("while-down")])  # raised: serving answers 503
            pg.start()
            recorder.write([_row("after")])  # same engine, same pool: no restart needed
            pg.restart()  # nobody wrote while it was down: the pool still holds dead ones
            recorder.write([_row("after-quiet-restart")])
            with recorder.sessions() as s:
                items = set(s.scalars(select(Prediction.item_id)))
                assert s.scalar(select(func.count(Prediction.id))) == 3
            assert items == {"before", "after", "after-quiet-restart"}
        finally:
            recorder.close()
