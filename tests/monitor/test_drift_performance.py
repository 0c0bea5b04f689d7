"""Performance on labelled items, on an example small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atr.monitor.drift_performance import LEAK_COLUMN, RECALL_COLUMN, indicator_columns, performance

NAN = np.nan


def window() -> pd.DataFrame:
    # item: truth (paper_only, firearm, knife) -> decision
    rows = [
        ("paper, cleared", 1, 0, 0, "CLEAR"),  # correct clear: not a leak
        ("goods, cleared", 0, 0, 0, "CLEAR"),  # leak 1
        ("goods, reviewed", 0, 0, 0, "REVIEW"),
        ("firearm, cleared", 0, 1, 0, "CLEAR"),  # leak 2 and a missed threat
        ("firearm, inspected", 0, 1, 0, "INSPECT"),
        ("knife, inspected", 0, 0, 1, "INSPECT"),
        ("knife, reviewed", 0, 0, 1, "REVIEW"),  # missed threat (not INSPECT)
        ("unlabelled", NAN, NAN, NAN, "CLEAR"),
        ("unlabelled", NAN, NAN, NAN, "INSPECT"),
    ]
    frame = pd.DataFrame(rows, columns=["item_id", "paper_only", "firearm", "knife", "decision"])
    for o in ("paper_only", "firearm", "knife"):
        frame[f"score_{o}"] = 0.5
    return frame


def test_leak_rate_and_threat_recall_by_hand() -> None:
    perf = performance(window())
    assert perf["labelled"] == 7
    assert (perf["non_paper"], perf["leaks"]) == (6, 2)
    assert perf["leak_rate"] == pytest.approx(2 / 6)
    assert (perf["threat_items"], perf["threats_inspected"]) == (4, 2)
    assert perf["threat_recall"] == pytest.approx(0.5)
    assert perf["per_class_recall"] == {
        "firearm": {"items": 2, "inspected": 1, "recall": 0.5},
        "knife": {"items": 2, "inspected": 1, "recall": 0.5},
    }


def test_indicator_means_are_the_rates() -> None:
    ind = indicator_columns(window())
    assert ind[LEAK_COLUMN].mean() == pytest.approx(2 / 6)
    assert ind[RECALL_COLUMN].mean() == pytest.approx(0.5)
    assert ind.iloc[7:].isna().all().all()  # unlabelled items count nowhere


def test_no_labels_gives_counts_zero_and_no_rates() -> None:
    frame = window().iloc[7:]
    perf = performance(frame)
    assert perf["labelled"] == 0 and perf["leak_rate"] is None and perf["threat_recall"] is None


def test_a_no_threat_model_counts_leaks_on_its_own_truth() -> None:
    # outputs no_threat first: goods cleared are no leak; no_threat is not a threat output
    rows = [
        ("goods, cleared", 1, 0, 0, "CLEAR"),
        ("knife, cleared", 0, 0, 1, "CLEAR"),  # leak and a missed threat
        ("firearm, inspected", 0, 1, 0, "INSPECT"),
        ("goods, reviewed", 1, 0, 0, "REVIEW"),
        ("unlabelled", NAN, NAN, NAN, "CLEAR"),
    ]
    frame = pd.DataFrame(rows, columns=["item_id", "no_threat", "firearm", "knife", "decision"])
    for o in ("no_threat", "firearm", "knife"):
        frame[f"score_{o}"] = 0.5
    perf = performance(frame)
    assert perf["low_risk"] == "no_threat" and perf["labelled"] == 4
    assert (perf["non_paper"], perf["leaks"], perf["leak_rate"]) == (2, 1, 0.5)
    assert (perf["threat_items"], perf["threats_inspected"]) == (2, 1)
    assert set(perf["per_class_recall"]) == {"firearm", "knife"}
    # leak indicator: only items known not low risk count (the firearm was not cleared)
    assert indicator_columns(frame)[LEAK_COLUMN].fillna(-1).tolist() == [-1, 1, 0, -1, -1]
