"""Drift scores and the Evidently report on synthetic numpy embeddings: a clearly shifted
embedding distribution is detected, a same-distribution one is not; the report's numbers
are the ones the rule uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from monitor_synth import synthetic_items

from atr.monitor.drift_scores import DriftMethods, window_scores
from atr.monitor.reference import monitor_frame
from atr.monitor.report import build_report, report_values, save_report

METHODS = DriftMethods.from_cfg({"embedding": {"method": "model"}})
EMBEDDING_THRESHOLD = 0.75


@pytest.fixture(scope="module")
def reference():
    return monitor_frame(synthetic_items(400, seed=0))


def test_same_distribution_is_not_drift(reference) -> None:
    scores = window_scores(reference, monitor_frame(synthetic_items(150, seed=1)), METHODS)
    assert scores["embedding"] < EMBEDDING_THRESHOLD  # classifier AUC near 0.5
    assert scores["scores"] < 0.3 and scores["image_stats"] < 0.3


def test_shifted_embeddings_are_drift(reference) -> None:
    shifted = monitor_frame(synthetic_items(150, seed=2, shift=1.0))
    scores = window_scores(reference, shifted, METHODS)
    assert scores["embedding"] > 0.9
    assert scores["scores"] > 0.5 and scores["image_stats"] > 1.0


def test_each_embedding_method_separates_the_shift(reference) -> None:
    same = monitor_frame(synthetic_items(150, seed=1))
    shifted = monitor_frame(synthetic_items(150, seed=2, shift=1.0))
    for name in ("mmd", "distance", "ratio"):
        methods = DriftMethods.from_cfg({"embedding": {"method": name}})
        assert window_scores(reference, shifted, methods)["embedding"] > \
            window_scores(reference, same, methods)["embedding"], name
    with pytest.raises(ValueError, match="known"):
        DriftMethods.from_cfg({"embedding": {"method": "tsne"}})


def test_report_writes_html_and_json_with_the_rule_numbers(reference, tmp_path: Path) -> None:
    current = monitor_frame(synthetic_items(150, seed=2, shift=1.0))
    # labels on a few items: the report gets the performance section
    current.loc[:9, ["paper_only", "firearm", "knife"]] = [0.0, 1.0, 0.0]
    scores = window_scores(reference, current, METHODS)
    snapshot = build_report(reference, current, METHODS, {"embedding": EMBEDDING_THRESHOLD},
                            metadata={"scanner_id": "s1", "scores": {"x": 1.0}})
    paths = save_report(snapshot, tmp_path / "s1" / "t0", {"scores": scores})

    html = paths["html"].read_text()
    assert paths["html"].stat().st_size > 10_000 and "Drift in embeddings" in html
    doc = json.loads(paths["snapshot"].read_text())
    assert json.loads(paths["summary"].read_text())["scores"]["embedding"] == \
        pytest.approx(scores["embedding"])

    values = report_values(snapshot)
    emb = next(v for k, v in values.items() if k.startswith("EmbeddingsDrift"))
    assert emb == pytest.approx(scores["embedding"])
    decisions = next(v for k, v in values.items() if k.startswith("ValueDrift(column=decision"))
    assert decisions == pytest.approx(scores["decisions"])
    for column, value in scores["columns"].items():
        key = next(k for k in values if k.startswith(f"ValueDrift(column={column},"))
        assert values[key] == pytest.approx(value), column
    # performance section: threat recall of the 10 labelled firearm items, both datasets
    recall = [v for k, v in values.items() if "inspected_threat" in k]
    print(values)
    assert recall
    assert len(doc["metrics"]) == len(snapshot.dict()["metrics"])
