"""Reference and current windows: reference.parquet and the prediction store give frames
with the same columns; windows are the newest scored predictions of one scanner."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from monitor_synth import (
    OUTPUTS,
    T0,
    add_feedback,
    add_predictions,
    synthetic_items,
    write_reference,
)

from atr.monitor.reference import read_reference
from atr.monitor.windows import recent_predictions, scanners, sliding_windows, window_ends
from atr.store.prediction_store import Prediction


def test_reference_parquet_maps_to_monitor_frame(tmp_path: Path) -> None:
    ref = read_reference(write_reference(tmp_path / "pkg" / "reference.parquet", n=50))
    assert ref.outputs == OUTPUTS
    frame = ref.frame
    assert len(frame) == 50
    assert {"score_paper_only", "score_knife", "brightness", "blue_share", "decision",
            "paper_only", "knife", "item_id", "created_at"} <= set(frame.columns)
    assert frame["embedding"].iloc[0].shape == (16,)
    assert frame["paper_only"].dtype == np.float64  # truth as float: NaN = unlabelled


def test_current_window_from_store_matches_reference_columns(
    tmp_path: Path, sessions
) -> None:
    ref = read_reference(write_reference(tmp_path / "reference.parquet", n=30))
    items = synthetic_items(40, seed=7)
    with sessions() as s:
        add_predictions(s, items, "scanner-a")
        add_predictions(s, synthetic_items(5, seed=8), "scanner-b")
        # an error decision after the scored ones: no scores, no embedding -> skipped
        s.add(Prediction(request_id="err", item_id="bad", scanner_id="scanner-a",
                         created_at=T0 + timedelta(hours=1), decision="INSPECT",
                         reason="invalid_image", scores=None, embedding=None))
        s.commit()
        add_feedback(s, items.item_id[39], {"paper_only": 0, "firearm": 1, "knife": 0})
        add_feedback(s, items.item_id[38], {"paper_only": 1, "firearm": 0, "knife": 0})
        # a later verdict corrects the earlier one
        add_feedback(s, items.item_id[38], {"paper_only": 0, "firearm": 0, "knife": 1},
                     at=T0 + timedelta(days=1))
        assert scanners(s) == ["scanner-a", "scanner-b"]
        window = recent_predictions(s, "scanner-a", 25, ref.outputs)
        assert recent_predictions(s, "scanner-a", 25, ref.outputs, model_version="9").empty

    assert list(window.columns) == list(ref.frame.columns)
    assert list(window["item_id"]) == list(items.item_id[15:40])  # newest 25, oldest first
    assert window["created_at"].is_monotonic_increasing
    np.testing.assert_allclose(window["embedding"].iloc[-1], items.embedding[39], rtol=1e-6)
    assert window["score_firearm"].iloc[-1] == float(items.score_firearm[39])
    assert window[["paper_only", "firearm", "knife"]].iloc[-1].tolist() == [0.0, 1.0, 0.0]
    assert window[["paper_only", "firearm", "knife"]].iloc[-2].tolist() == [0.0, 0.0, 1.0]
    assert window["paper_only"].iloc[:-2].isna().all()


def test_sliding_windows_end_step_apart_at_the_newest_item() -> None:
    frame = pd.DataFrame({"i": range(100)})
    assert window_ends(100, 30, 10, 3) == [80, 90, 100]
    windows = sliding_windows(frame, 30, 10, 3)
    assert [(w["i"].iloc[0], w["i"].iloc[-1]) for w in windows] == [(50, 79), (60, 89),
                                                                     (70, 99)]
    assert [len(w) for w in sliding_windows(frame, 95, 10, 3)] == [95]  # only full windows
    assert sliding_windows(frame, 101, 10, 3) == []
