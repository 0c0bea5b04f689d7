"""Drift scores and the Evidently report on synthetic numpy embeddings: a clearly shifted
embedding distribution is detected, a same-distribution one is not; the report's numbers
are the ones the rule uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from monitor_synth import synthetic_items
from omegaconf import OmegaConf

from atr.config import compose
from atr.monitor.drift_performance import performance
from atr.monitor.drift_scores import DriftMethods, window_scores
from atr.monitor.reference import monitor_frame
from atr.monitor.report import build_report, report_values, save_report

# The configured method and threshold (conf/monitor/default.yaml): MMD
_MON = compose("monitor").monitor
METHODS = DriftMethods.from_cfg(OmegaConf.to_container(_MON.methods))
EMBEDDING_THRESHOLD = float(_MON.rule.thresholds.embedding)


@pytest.fixture(scope="module")
def reference():
    return monitor_frame(synthetic_items(400, seed=0))


def test_same_distribution_is_not_drift(reference) -> None:
    scores = window_scores(reference, monitor_frame(synthetic_items(150, seed=1)), METHODS)
    assert METHODS.embedding == "mmd"
    assert scores["embedding"] < EMBEDDING_THRESHOLD
    assert scores["scores"] < 0.3 and scores["image_stats"] < 0.3


def test_shifted_embeddings_are_drift(reference) -> None:
    shifted = monitor_frame(synthetic_items(150, seed=2, shift=1.0))
    scores = window_scores(reference, shifted, METHODS)
    assert scores["embedding"] > 10 * EMBEDDING_THRESHOLD
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
    # labels on 20 items only: the report gets the performance section
    truth = ["paper_only", "firearm", "knife"]
    current.loc[20:, truth] = float("nan")
    perf = performance(current)
    assert perf["labelled"] == 20 and perf["non_paper"] > 0 and perf["threat_items"] > 0
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
    # performance section: the mean of each indicator column is the rate on labelled items
    # leaked_not_low_risk: labelled items not low risk (the model's definition) cleared
    assert values["MeanValue(column=leaked_not_low_risk)"] == pytest.approx(perf["leak_rate"])
    assert values["MeanValue(column=inspected_threat)"] == pytest.approx(perf["threat_recall"])
    assert len(doc["metrics"]) == len(snapshot.dict()["metrics"])
