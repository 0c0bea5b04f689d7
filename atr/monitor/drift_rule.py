"""The drift decision rule: when a scanner's stream has drifted enough to act.

Per scanner, per signal (atr.monitor.drift_scores.SIGNALS): the signal is *flagged* in a
window when its value exceeds the signal's threshold; drift is declared when one signal
is flagged in `consecutive` successive windows (windows end `window_step` items apart).
Requiring k > 1 windows suppresses the single-window excursions that overlapping,
noisy windows produce, at a cost of (k - 1) * step items of delay. A null threshold
reports the signal without letting it fire.

Labelled items add a direct check (`performance`): with at least `min_labelled` labelled
non-paper items in the window, a leak rate above `max_leak_rate` fires at once (kind
"performance"), likewise threat recall below `min_threat_recall` on `min_labelled_threats`
threat items.

The default thresholds (below) and their measured false-alarm rate and detection delays
come from benchmarks/drift_detection.py (results/drift_detection.json).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from atr.structured import to_dataclass

# The dataclasses below hold the defaults: they are the structured config of
# `monitor.rule` (conf/monitor/default.yaml only overrides them; atr/config_schema.py
# registers DriftRule), so the YAML default and the code default are one thing.


@dataclass(frozen=True)
class RuleDecision:
    drift: bool
    kind: str | None = None  # the signal that fired (or "performance")
    score: float | None = None  # its value in the newest window
    threshold: float | None = None
    flagged: dict[str, int] = field(default_factory=dict)  # signal -> consecutive windows


def _measured_thresholds() -> dict[str, float | None]:
    # Each = 2 x the largest value over the windows of a 3 000-item stationary calibration
    # stream (benchmarks/drift_detection.py), then checked on 20 000 other stationary items.
    return {
        "embedding": 0.01,    # MMD^2 (unbiased)
        "scores": 0.3,        # max over outputs of normed Wasserstein
        "decisions": 0.12,    # Jensen-Shannon distance of the decision mix
        "image_stats": 0.3,   # max over image statistics of normed Wasserstein
    }


@dataclass(frozen=True)
class PerformanceRule:
    """On labelled items of the newest window (`monitor.rule.performance`)."""

    min_labelled: int = 50
    max_leak_rate: float | None = None  # e.g. 0.02: fire when more labelled non-paper items leak
    min_labelled_threats: int = 20
    min_threat_recall: float | None = None  # e.g. 0.9


@dataclass(frozen=True)
class DriftRule:
    # signal -> threshold; None: reported, never fires
    thresholds: dict[str, float | None] = field(default_factory=_measured_thresholds)
    consecutive: int = 2  # windows in a row a signal must exceed its threshold
    performance: PerformanceRule = field(default_factory=PerformanceRule)

    def __post_init__(self) -> None:
        # Imported here: the schema is registered before every compose, and drift_scores
        # pulls in pandas.
        from atr.monitor.drift_scores import SIGNALS

        if self.consecutive < 1:
            raise ValueError(f"monitor.rule.consecutive must be >= 1, got {self.consecutive}")
        unknown = set(self.thresholds) - set(SIGNALS)
        if unknown:
            raise ValueError(f"monitor.rule.thresholds: unknown signal(s) {sorted(unknown)}; "
                             f"known: {list(SIGNALS)}")

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> DriftRule:
        """From `monitor.rule` of a composed config or a (partial) plain dict: missing keys
        take the defaults above; a misspelt key or a wrong type is refused, named."""
        return to_dataclass(cls, cfg, "monitor.rule")

    def flags(self, scores: Mapping[str, Any]) -> dict[str, bool]:
        """Which signals exceed their threshold in one window."""
        return {s: t is not None and scores.get(s) is not None and float(scores[s]) > t
                for s, t in self.thresholds.items()}

    def decide(self, history: Sequence[Mapping[str, Any]],
               performance: Mapping[str, Any] | None = None) -> RuleDecision:
        """Decision on windows oldest first (the newest last); `performance` of the newest."""
        runs = {s: 0 for s in self.thresholds}
        for scores in history:
            for signal, flagged in self.flags(scores).items():
                runs[signal] = runs[signal] + 1 if flagged else 0
        perf = self._performance(performance or {})
        if perf is not None:
            return RuleDecision(True, "performance", perf[0], perf[1], runs)
        fired = [s for s, n in runs.items() if n >= self.consecutive]
        if not fired:
            return RuleDecision(False, flagged=runs)
        newest = history[-1]
        # Several signals at once: report the one furthest over its threshold.
        kind = max(fired, key=lambda s: float(newest[s]) / max(self.thresholds[s] or 1e-12,
                                                               1e-12))
        return RuleDecision(True, kind, float(newest[kind]), self.thresholds[kind], runs)

    def _performance(self, perf: Mapping[str, Any]) -> tuple[float, float] | None:
        rule = self.performance
        leak, recall = perf.get("leak_rate"), perf.get("threat_recall")
        if (rule.max_leak_rate is not None and leak is not None
                and perf.get("non_paper", 0) >= rule.min_labelled and leak > rule.max_leak_rate):
            return float(leak), rule.max_leak_rate
        if (rule.min_threat_recall is not None and recall is not None
                and perf.get("threat_items", 0) >= rule.min_labelled_threats
                and recall < rule.min_threat_recall):
            return float(recall), rule.min_threat_recall
        return None


class StreamingRule:
    """The rule over an unbounded stream of windows (the benchmark's view): fires when a
    signal reaches `consecutive` flagged windows, then starts counting afresh, as the job
    does after storing an event."""

    def __init__(self, rule: DriftRule) -> None:
        self.rule = rule
        self.history: list[Mapping[str, Any]] = []

    def update(self, scores: Mapping[str, Any]) -> RuleDecision:
        self.history = [*self.history, scores][-self.rule.consecutive:]
        decision = self.rule.decide(self.history)
        if decision.drift:
            self.history = []
        return decision
