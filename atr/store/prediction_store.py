"""The prediction store: every decision on the line, the feedback that labels it, drift
and leak events, the scanners' safe-mode state, the live leak estimates and the analysts'
label queue. This module is the store's schema: one place for every table.

SQLAlchemy 2 over SQLite (WAL) by default; a PostgreSQL URL (`postgresql+psycopg://...`)
lets several serving replicas share one store. No torch here: serving imports this.

The tables are created and changed only by the migrations (atr/store/migrations, `atr store
upgrade`): `open_store` checks the store's revision and refuses one that is not this code's;
`ensure_store` (jobs and demos that own an embedded store) upgrades first, then opens.
A change here needs a new revision (docs/store.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from atr.store.migrations import StoreSchemaError, check, safe_url, upgrade

__all__ = ["StoreSchemaError", "ensure_store", "make_engine", "open_store", "safe_url"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Prediction(Base):
    """One decision sent back to the sorter (stored before the response leaves)."""

    __tablename__ = "predictions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    item_id: Mapped[str] = mapped_column(String(200), index=True)
    scanner_id: Mapped[str] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    model_name: Mapped[str | None] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(50), index=True)
    decision: Mapped[str] = mapped_column(String(10), index=True)  # CLEAR | REVIEW | INSPECT
    # paper_only, threat:<class>, uncertain, error codes
    reason: Mapped[str] = mapped_column(String(200))
    scores: Mapped[dict[str, float] | None] = mapped_column(JSON)  # {output: probability}
    embedding: Mapped[list[float] | None] = mapped_column(JSON)  # compact image embedding
    image_stats: Mapped[dict[str, float] | None] = mapped_column(JSON)  # atr.package.image_stats
    image_ref: Mapped[str | None] = mapped_column(String(200))  # content address in the image store
    latency_ms: Mapped[float | None] = mapped_column(Float)
    # challenger's version/scores/decision
    shadow: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # What makes every automatic release explainable after the fact: the policy's own
    # decision and reason before the line's rules (plausibility, safe mode, audit) ...
    would_be: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # ... whether this item was drawn for a random audit of CLEARs (atr.policy.audit) ...
    audit: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # ... the plausibility figures and the failed check, if any (atr.package.plausibility) ...
    checks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # ... the scanner's state (normal | safe_mode) and the clear threshold that applied.
    scanner_state: Mapped[str | None] = mapped_column(String(20))
    clear_threshold: Mapped[float | None] = mapped_column(Float)
    # 0: the decision of record for (scanner_id, item_id); a resend replays it. 1, 2, ...:
    # duplicates stored before idempotency (revision 0002), kept as acknowledged.
    resend_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When retention removed the image (atr store prune); image_ref stays as the record.
    image_pruned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Where the evidence is, for REVIEW / INSPECT (revision 0004; the reply's
    # `localisation`): {"boxes": [{"label", "score", "xyxy"}], "peak": {...}}; null for
    # CLEAR and fail-safe rows.
    localisation: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("uq_predictions_scanner_item", "scanner_id", "item_id",
                            "resend_seq", unique=True),)


class Feedback(Base):
    """An inspection outcome or analyst verdict for an item that was decided."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(String(200), index=True)
    labels: Mapped[dict[str, int]] = mapped_column(JSON)  # {class: 0/1, ..., "paper_only": 0/1}
    source: Mapped[str] = mapped_column(String(20))  # inspection | analyst
    who: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when the verdict was given
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    batch: Mapped[str | None] = mapped_column(String(200), index=True)  # frontline batch it went to
    # An analyst's regions, [{"label", "xyxy"}] in the image's pixels (revision 0005) ...
    boxes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # ... and the verdict's id in its labelling tool (labelstudio:<project>:<annotation>):
    # unique, so an import adds each annotation once.
    source_ref: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("uq_feedback_source_ref", "source_ref", unique=True),)


class DriftEvent(Base):
    """A drift decision of the monitor: what drifted, when, and the evidence."""

    __tablename__ = "drift_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    scanner_id: Mapped[str | None] = mapped_column(String(100), index=True)
    model_version: Mapped[str | None] = mapped_column(String(50))
    # embedding | scores | decisions | image_stats | performance | leak_rate
    kind: Mapped[str] = mapped_column(String(50))
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_items: Mapped[int | None] = mapped_column(Integer)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    report_path: Mapped[str | None] = mapped_column(Text)
    handled: Mapped[bool] = mapped_column(Boolean, default=False)  # retraining triggered


class LabelTask(Base):
    """An item queued for an analyst's label, ranked by how much the label is worth."""

    __tablename__ = "label_queue"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # one task per item: concurrent exports cannot queue the same parcel twice
    item_id: Mapped[str] = mapped_column(String(200), unique=True)
    prediction_id: Mapped[int | None] = mapped_column(Integer)
    priority: Mapped[float] = mapped_column(Float, index=True)
    reason: Mapped[str] = mapped_column(String(200))
    # open|exported|labelled
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    exported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ScannerMode(Base):
    """A scanner's safe-mode flag, shared by every replica (atr.store.safe_mode)."""

    __tablename__ = "scanner_modes"
    scanner_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    safe_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    # drift | leak_alarm | operator | uncovered (the last is never stored: it is computed)
    cause: Mapped[str | None] = mapped_column(String(50))
    since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    by: Mapped[str | None] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(50))  # champion when entered
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ScannerEvent(Base):
    """Each entry into and exit from safe mode: who, when, why (the audit trail)."""

    __tablename__ = "scanner_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scanner_id: Mapped[str] = mapped_column(String(100), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(20))  # enter | lift
    cause: Mapped[str] = mapped_column(String(50))
    by: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(50))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class LeakEstimate(Base):
    """The live leak monitor's latest figures per scanner and model version (atr.monitor
    .leak_rate), read by every replica for /metrics and /v1/model."""

    __tablename__ = "leak_estimates"
    scanner_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(50), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    audits: Mapped[int] = mapped_column(Integer)  # audited CLEARs with an inspection outcome
    leaks: Mapped[int] = mapped_column(Integer)  # of which not low risk
    rate: Mapped[float | None] = mapped_column(Float)
    upper: Mapped[float | None] = mapped_column(Float)  # one-sided Clopper–Pearson
    statistic: Mapped[float | None] = mapped_column(Float)  # the sequential test's
    alarm: Mapped[bool] = mapped_column(Boolean, default=False)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL: readers (monitor, feedback) never block the line's writers; synchronous=FULL
    # so an acknowledged decision survives a crash or power loss.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_engine(url: str) -> Engine:
    """The engine for a store URL (SQLite: its folder made, WAL pragmas on every connection);
    touches no table."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False}
    else:
        # after a PostgreSQL restart the next request finds a live connection: a dead
        # pooled one is replaced at checkout (a ping: measured 0.04 ms on loopback)
        kwargs["pool_pre_ping"] = True
    engine: Engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_store(url: str) -> sessionmaker[Session]:
    """A session factory on a store at this code's schema revision; StoreSchemaError (what
    to run, password hidden) for an empty, older, pre-migration or newer store. Creates and
    alters nothing: replicas share the store, only `atr store upgrade` changes it."""
    engine = make_engine(url)
    try:
        check(engine, url)
    except BaseException:
        engine.dispose()
        raise
    return sessionmaker(engine, expire_on_commit=False)


def ensure_store(url: str) -> sessionmaker[Session]:
    """Upgrade the store to head (created if empty), then open it: for the jobs, demos and
    tests that own an embedded store. A shared store is upgraded once, by an operator."""
    upgrade(url)
    return open_store(url)
