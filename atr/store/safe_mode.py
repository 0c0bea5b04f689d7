"""Per-scanner safe mode in the shared store: enter, lift, read; every change an event.

The flag lives in the prediction store (table `scanner_modes`) so that every serving
replica honours the same state; `scanner_events` keeps who entered or lifted it, when and
why. A scanner the champion's calibration does not cover is in safe mode without a row
here: that state is computed from policy.json by serving (serving/line_rules.py), and it
ends by itself when a covering version becomes champion.

Causes: `drift` and `leak_alarm` (the monitor), `operator` (a person, `atr safe-mode`
or the API), `uncovered` (computed, never stored).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from atr.store.prediction_store import ScannerEvent, ScannerMode, utcnow

CAUSES = ("drift", "leak_alarm", "operator", "uncovered")
STORED_CAUSES = ("drift", "leak_alarm", "operator")


def enter_safe_mode(session: Session, scanner_id: str, cause: str, by: str,
                    model_version: str | None = None,
                    detail: dict[str, Any] | None = None) -> bool:
    """Put a scanner in safe mode; False (no event) when it already is. Commits."""
    if cause not in STORED_CAUSES:
        raise ValueError(f"safe mode cause {cause!r} not one of {STORED_CAUSES}")
    return _change(session, scanner_id, True, cause, by, model_version, detail)


def lift_safe_mode(session: Session, scanner_id: str, by: str, cause: str = "operator",
                   model_version: str | None = None,
                   detail: dict[str, Any] | None = None) -> bool:
    """End a scanner's stored safe mode; False (no event) when it was not in it. Commits.

    `cause` says why it ends: `operator` (a person lifted it) or `covered` (a version
    whose calibration covers the scanner became champion)."""
    return _change(session, scanner_id, False, cause, by, model_version, detail)


def _change(session: Session, scanner_id: str, on: bool, cause: str, by: str,
            model_version: str | None, detail: dict[str, Any] | None) -> bool:
    """Set the flag and log the event in one transaction. The flag flips by a conditional
    UPDATE (or an INSERT that yields to a concurrent one): whichever replica changes the row
    logs the event; the other changes nothing and logs nothing, on SQLite (where a read
    takes no lock) as on PostgreSQL."""
    if not by:
        raise ValueError("safe mode: who changes it (by) is required")
    now = utcnow()
    values = dict(safe_mode=on, cause=cause, since=now, by=by, model_version=model_version,
                  detail=detail)
    changed = session.execute(
        update(ScannerMode)
        .where(ScannerMode.scanner_id == scanner_id, ScannerMode.safe_mode.is_not(on))
        .values(**values)).rowcount
    if not changed and on:  # no row yet: the first entry creates it
        insert = (sqlite_insert if session.bind.dialect.name == "sqlite"  # type: ignore[union-attr]
                  else pg_insert)(ScannerMode).values(scanner_id=scanner_id, **values)
        # RETURNING, not rowcount: psycopg reports -1 for a skipped ON CONFLICT insert
        changed = session.execute(
            insert.on_conflict_do_nothing(index_elements=["scanner_id"])
            .returning(ScannerMode.scanner_id)).first() is not None
    if not changed:
        session.rollback()
        return False
    session.add(ScannerEvent(scanner_id=scanner_id, at=now, action="enter" if on else "lift",
                             cause=cause, by=by, model_version=model_version, detail=detail))
    session.commit()
    return True


def safe_mode_scanners(session: Session) -> dict[str, dict[str, Any]]:
    """The scanners whose stored flag is on, with cause, since, by and the champion then."""
    rows = session.scalars(select(ScannerMode).where(ScannerMode.safe_mode.is_(True)))
    return {r.scanner_id: {"cause": r.cause, "since": r.since.isoformat() if r.since else None,
                           "by": r.by, "model_version": r.model_version} for r in rows}


def scanner_events(session: Session, scanner_id: str | None = None) -> list[dict[str, Any]]:
    """The safe-mode log, oldest first."""
    query = select(ScannerEvent)
    if scanner_id is not None:
        query = query.where(ScannerEvent.scanner_id == scanner_id)
    return [{"scanner_id": e.scanner_id, "at": e.at.isoformat(), "action": e.action,
             "cause": e.cause, "by": e.by, "model_version": e.model_version,
             "detail": e.detail}
            for e in session.scalars(query.order_by(ScannerEvent.at, ScannerEvent.id))]
