"""Synthetic monitor data: numpy embeddings, scores, image statistics and decisions with a
known distribution, a reference.parquet in the evaluate stage's columns, and a SQLite
prediction store filled with Prediction rows the way serving writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from atr.package.image_stats import STAT_NAMES
from atr.store.prediction_store import Feedback, Prediction

OUTPUTS = ["paper_only", "firearm", "knife"]
DIMS = 16
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def synthetic_items(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Items whose embedding mean moves by `shift` (in units of its std) on every dim;
    scores and stats move with it, as they would under a real scanner change."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(shift, 1.0, size=(n, DIMS)).astype(np.float32)
    frame = pd.DataFrame({"item_id": [f"it-{seed}-{i:05d}" for i in range(n)]})
    frame["score_paper_only"] = np.clip(rng.beta(2, 3, n) + 0.3 * shift, 0, 1)
    frame["score_firearm"] = np.clip(rng.beta(1, 8, n) + 0.1 * shift, 0, 1)
    frame["score_knife"] = rng.beta(1, 8, n)
    frame["embedding"] = list(emb)
    for j, name in enumerate(STAT_NAMES):
        frame[name] = rng.normal(0.5 + 0.02 * j + 0.1 * shift, 0.05, n)
    frame["decision"] = np.where(frame["score_paper_only"] > 0.6, "CLEAR",
                                 np.where(frame["score_firearm"] > 0.3, "INSPECT", "REVIEW"))
    frame["reason"] = "test"
    frame["paper_only"] = (rng.random(n) < 0.4).astype(np.int8)
    frame["firearm"] = (rng.random(n) < 0.1).astype(np.int8)
    frame["knife"] = (rng.random(n) < 0.1).astype(np.int8)
    return frame


def write_reference(path: Path, n: int = 400, seed: int = 0) -> Path:
    """reference.parquet with the columns atr.evaluation.calibrate writes."""
    frame = synthetic_items(n, seed)
    frame.insert(1, "split", "val")
    frame.insert(2, "scanner_id", "ref-scanner")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def add_predictions(session, items: pd.DataFrame, scanner_id: str, start: datetime = T0,
                    model_version: str = "1") -> list[Prediction]:
    """One Prediction per item, one second apart, as serving stores them."""
    rows = []
    for i, item in enumerate(items.itertuples(index=False)):
        rows.append(Prediction(
            request_id=f"{scanner_id}-{item.item_id}", item_id=item.item_id,
            scanner_id=scanner_id, created_at=start + timedelta(seconds=i),
            model_name="atr-screening", model_version=model_version,
            decision=item.decision, reason=item.reason,
            scores={o: float(getattr(item, f"score_{o}")) for o in OUTPUTS},
            embedding=[float(x) for x in item.embedding],
            image_stats={n: float(getattr(item, n)) for n in STAT_NAMES}))
    session.add_all(rows)
    session.commit()
    return rows


def add_feedback(session, item_id: str, labels: dict[str, int], at: datetime = T0) -> None:
    session.add(Feedback(item_id=item_id, labels=labels, source="inspection", who="officer",
                         at=at))
    session.commit()
