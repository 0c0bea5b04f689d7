"""Which decision a verdict is about, when its item was decided several times.

Feedback names an item, not a decision. An item can have several decisions: the same
item_id on another scanner (a re-scan), or duplicates a store from before idempotent item
ids holds (resend_seq > 0). Every reader that joins feedback to decisions (frontline
batches, the leak monitor, the drift monitor's labelled windows) uses this one rule:

    a verdict joins the item's latest decision at or before the verdict's time (`at`):
    the scan the officer or analyst acted on; a verdict timed before every decision
    (clock skew between sites) joins the item's latest decision. Ties: the higher id.

So a verdict counts once, for one decision, whichever scanner reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from atr.store.prediction_store import Prediction

_CHUNK = 500  # ids per IN (...) clause: well under every database's parameter limit


class _Decided(Protocol):
    id: Any
    created_at: Any


D = TypeVar("D", bound=_Decided)


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)  # SQLite drops the zone


def joined_decision(decisions: Sequence[D], at: datetime | None) -> D | None:
    """The one decision of `decisions` (one item's, any order) that a verdict at `at` joins."""
    if not decisions:
        return None
    ordered = sorted(decisions, key=lambda p: (_utc(p.created_at), p.id))
    before = [p for p in ordered if at is None or _utc(p.created_at) <= _utc(at)]
    return (before or ordered)[-1]


def decisions_by_item(session: Session, item_ids: Sequence[str]) -> dict[str, list[Any]]:
    """Every decision (id, item_id, created_at) of these items, on any scanner."""
    out: dict[str, list[Any]] = {}
    ids = sorted(set(item_ids))
    for k in range(0, len(ids), _CHUNK):
        for row in session.execute(
                select(Prediction.id, Prediction.item_id, Prediction.created_at)
                .where(Prediction.item_id.in_(ids[k:k + _CHUNK]))):
            out.setdefault(row.item_id, []).append(row)
    return out


def joined_id(decisions: dict[str, list[Any]], item_id: str, at: datetime | None
              ) -> int | None:
    hit = joined_decision(decisions.get(item_id, []), at)
    return None if hit is None else int(hit.id)
