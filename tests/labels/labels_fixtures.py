"""Test helpers for the label loop: what serving and the feedback endpoints would write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from atr.data.dataset_writer import encode_png
from atr.store.image_store import ImageStore
from atr.store.prediction_store import Feedback, Prediction

T0 = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
CONFIDENT = {"paper_only": 0.02, "firearm": 0.01, "knife": 0.01, "ammunition": 0.01,
             "narcotics": 0.01, "lithium_battery": 0.01}


def png(seed: int, size: int = 16) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_png(rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8))


class Line:
    """Writes what serving and the feedback endpoints would: predictions, images, verdicts."""

    def __init__(self, sessions: sessionmaker[Session], images: ImageStore):
        self.sessions, self.images, self.n = sessions, images, 0

    def decide(self, item_id: str, *, scanner: str = "S1", decision: str = "CLEAR",
               scores: dict[str, float] | None = None, at: datetime | None = None,
               image: bytes | None = None) -> Prediction:
        self.n += 1
        # A second decision of the same scanner and item is what a store from before
        # idempotent item ids holds (revision 0002 numbers them): readers must still cope.
        with self.sessions() as s:
            seq = s.scalar(select(func.count(Prediction.id)).where(
                Prediction.scanner_id == scanner, Prediction.item_id == item_id)) or 0
        p = Prediction(resend_seq=seq,
            request_id=f"req-{self.n:04d}", item_id=item_id, scanner_id=scanner,
            created_at=at or T0 + timedelta(minutes=self.n), model_name="atr-screening",
            model_version="3", decision=decision, reason="paper_only" if decision == "CLEAR"
            else "uncertain" if decision == "REVIEW" else "threat:knife",
            scores=dict(scores or CONFIDENT), embedding=[0.0, 1.0],
            image_ref=self.images.put(image if image is not None else png(self.n)),
        )
        with self.sessions.begin() as s:
            s.add(p)
        return p

    def verdict(self, item_id: str, labels: dict[str, Any], *, source: str = "inspection",
                who: str = "officer-7", at: datetime | None = None) -> None:
        with self.sessions.begin() as s:
            s.add(Feedback(item_id=item_id, labels=labels, source=source, who=who,
                           at=at or T0 + timedelta(hours=1), received_at=T0 + timedelta(hours=2)))
