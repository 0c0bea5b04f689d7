import json

import numpy as np
import pytest

from atr.policy.bounds import clopper_pearson
from atr.policy.decision import Policy
from atr.policy.safety_metrics import policy_report, truth_category

# One threat class; clear at paper_only >= 0.8, inspect at knife >= 0.5.
POLICY = Policy(["paper_only", "knife"], clear_threshold=0.8, inspect_thresholds={"knife": 0.5},
                targets={"confidence": 0.95})
#            scores        paper knife  decision
ITEMS = [
    ([0.90, 0.1], 1, 0),  # CLEAR
    ([0.60, 0.1], 1, 0),  # REVIEW
    ([0.85, 0.1], 0, 0),  # CLEAR   goods leaked
    ([0.20, 0.1], 0, 0),  # REVIEW
    ([0.10, 0.9], 0, 1),  # INSPECT threat caught
    ([0.90, 0.2], 0, 1),  # CLEAR   threat leaked: the worst error
    ([0.30, 0.4], 0, 1),  # REVIEW
    ([0.10, 0.7], 0, 0),  # INSPECT goods false alarm
]


@pytest.fixture
def report():
    scores = np.array([s for s, _, _ in ITEMS])
    paper = np.array([p for _, p, _ in ITEMS])
    knife = np.array([[k] for _, _, k in ITEMS])
    return policy_report(POLICY, scores, paper, knife)


def test_hand_checked_rates(report):
    assert report["n"] == 8
    assert (report["n_paper_only"], report["n_goods"], report["n_threat"]) == (2, 3, 3)
    assert report["auto_clear_rate"] == 3 / 8
    assert report["paper_only_clear_rate"] == 1 / 2
    assert report["leak_count"] == 2 and report["leak_rate"] == 2 / 6
    assert report["leak_rate_upper"] == pytest.approx(clopper_pearson(2, 6, 0.95).upper)
    assert report["threat_cleared_count"] == 1 and report["threat_cleared_rate"] == 1 / 3
    assert report["threat_cleared_rate_upper"] == pytest.approx(clopper_pearson(1, 3, 0.95).upper)
    assert report["threat_recall"]["knife"]["recall"] == 1 / 3
    assert report["threat_recall"]["knife"]["recall_lower"] == pytest.approx(
        clopper_pearson(1, 3, 0.95).lower
    )
    assert report["analyst_load"] == 3 / 8 and report["inspect_rate"] == 2 / 8


def test_confusion_and_plain_json(report):
    assert report["confusion"] == {
        "paper_only": {"CLEAR": 1, "REVIEW": 1, "INSPECT": 0},
        "goods": {"CLEAR": 1, "REVIEW": 1, "INSPECT": 1},
        "threat": {"CLEAR": 1, "REVIEW": 1, "INSPECT": 1},
    }
    json.dumps(report, allow_nan=False)


def test_invalid_scores_count_as_inspect_and_empty_groups_give_none():
    scores = np.array([[np.nan, 0.0], [0.9, 0.0]])
    report = policy_report(POLICY, scores, np.array([1, 1]), np.array([[0], [0]]))
    assert report["confusion"]["paper_only"] == {"CLEAR": 1, "REVIEW": 0, "INSPECT": 1}
    assert report["leak_rate"] is None and report["leak_rate_upper"] is None
    assert report["threat_recall"]["knife"]["recall"] is None


def test_threat_wins_over_an_inconsistent_paper_label():
    assert truth_category([1, 1, 0], [[1], [0], [0]]).tolist() == ["threat", "paper_only", "goods"]
