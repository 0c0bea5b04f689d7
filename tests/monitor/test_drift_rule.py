"""The drift rule on crafted window sequences."""

from __future__ import annotations

import pytest

from atr.monitor.drift_rule import DriftRule, PerformanceRule, StreamingRule

RULE = DriftRule(thresholds={"embedding": 0.7, "scores": 0.5, "decisions": None},
                 consecutive=2,
                 performance=PerformanceRule(min_labelled=10, max_leak_rate=0.05,
                                             min_labelled_threats=5, min_threat_recall=0.9))


def w(embedding: float = 0.5, scores: float = 0.1, decisions: float = 0.9) -> dict:
    return {"embedding": embedding, "scores": scores, "decisions": decisions}


def test_quiet_windows_do_not_fire() -> None:
    assert not RULE.decide([w(), w(), w()]).drift


def test_one_window_over_threshold_is_not_enough() -> None:
    decision = RULE.decide([w(), w(0.9), w()])
    assert not decision.drift
    assert not RULE.decide([w(), w(), w(0.9)]).drift  # a run of 1 at the end


def test_k_consecutive_windows_fire_with_the_signal_named() -> None:
    decision = RULE.decide([w(), w(0.8), w(0.9)])
    assert decision.drift and decision.kind == "embedding"
    assert decision.score == 0.9 and decision.threshold == 0.7
    assert decision.flagged["embedding"] == 2


def test_interrupted_run_does_not_fire_and_signals_do_not_mix() -> None:
    assert not RULE.decide([w(0.9), w(), w(0.9)]).drift
    assert not RULE.decide([w(0.9), w(scores=0.6)]).drift  # one each: no signal has 2


def test_signal_without_threshold_never_fires() -> None:
    assert not RULE.decide([w(decisions=5.0)] * 5).drift


def test_strongest_signal_is_reported_when_several_fire() -> None:
    decision = RULE.decide([w(0.8, 0.9), w(0.8, 1.5)])
    assert decision.kind == "scores"  # 1.5 / 0.5 beats 0.8 / 0.7


def test_performance_fires_only_with_enough_labelled_items() -> None:
    few = {"non_paper": 3, "leak_rate": 1.0, "threat_items": 0, "threat_recall": None}
    assert not RULE.decide([w()], few).drift
    leaky = {"non_paper": 20, "leak_rate": 0.1, "threat_items": 0, "threat_recall": None}
    decision = RULE.decide([w()], leaky)
    assert decision.drift and decision.kind == "performance" and decision.threshold == 0.05
    missed = {"non_paper": 20, "leak_rate": 0.0, "threat_items": 10, "threat_recall": 0.8}
    assert RULE.decide([w()], missed).kind == "performance"


def test_streaming_rule_counts_afresh_after_an_alarm() -> None:
    stream = StreamingRule(RULE)
    fired = [stream.update(w(0.9)).drift for _ in range(5)]
    assert fired == [False, True, False, True, False]


def test_config_refuses_unknown_signal_and_bad_k() -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        DriftRule.from_cfg({"thresholds": {"embeddings": 0.7}})
    with pytest.raises(ValueError, match="consecutive"):
        DriftRule(thresholds={}, consecutive=0)
    rule = DriftRule.from_cfg({"consecutive": 3, "thresholds": {"embedding": 0.75},
                               "performance": {"max_leak_rate": 0.02}})
    assert rule.consecutive == 3 and rule.performance.max_leak_rate == 0.02
    assert rule.performance.min_threat_recall is None
    # A partial config overrides the defaults, the others stay.
    assert rule.thresholds == {**DriftRule().thresholds, "embedding": 0.75}
    with pytest.raises(ValueError, match=r"monitor\.rule\.performance\.min_labeled"):
        DriftRule.from_cfg({"performance": {"min_labeled": 10}})
    with pytest.raises(ValueError, match=r"monitor\.rule\.consecutive"):
        DriftRule.from_cfg({"consecutive": "two"})


def test_composed_rule_is_the_dataclass_default_and_overrides_apply() -> None:
    from hydra.errors import ConfigCompositionException

    from atr.config import compose

    assert DriftRule.from_cfg(compose("monitor").monitor.rule) == DriftRule()
    cfg = compose("monitor", ["monitor.rule.consecutive=3",
                              "monitor.rule.performance.max_leak_rate=0.02",
                              "monitor.rule.thresholds.scores=null"])
    rule = DriftRule.from_cfg(cfg.monitor.rule)
    assert (rule.consecutive, rule.performance.max_leak_rate) == (3, 0.02)
    assert rule.thresholds["scores"] is None and rule.thresholds["embedding"] == 0.01
    with pytest.raises(ConfigCompositionException, match="min_labeled"):
        compose("monitor", ["monitor.rule.performance.min_labeled=3"])


def test_onset_delay_and_false_alarms_on_a_replayed_series() -> None:
    from atr.line.drift_drill import alarms, onset_delay

    # windows close every 50 items; drift starts after item 300
    values = [0.5, 0.9, 0.9, 0.5, 0.5, 0.5, 0.8, 0.9, 0.9]
    series = [{**w(e), "end": 100 + 50 * i} for i, e in enumerate(values)]
    assert [a["end"] for a in alarms(RULE, series)] == [200, 450]
    result = onset_delay(RULE, series, onset=300)
    assert result["false_alarms_before_onset"] == 1  # the alarm at 200
    assert result["delay_items"] == 150 and result["kind"] == "embedding"
    assert onset_delay(RULE, series[:6], onset=300)["delay_items"] is None
