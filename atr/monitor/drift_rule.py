"""The drift decision rule: when a scanner's stream has drifted enough to act.

Per scanner, per signal (atr.monitor.drift_scores.SIGNALS): the signal is *flagged* in a
window when its value exceeds the signal's threshold; drift is declared when one signal
is flagged in `consecutive` successive windows (windows end `window_step` items apart).
Requiring k > 1 windows suppresses the single-window excursions that overlapping,
noisy windows produce, at a cost of (k - 1) * step items of delay. A null threshold
reports the signal without letting it fire.

Labelled items add a direct check: with at least `min_labelled` labelled non-paper items
in the window, a leak rate above `max_leak_rate` fires at once (kind "performance"),
likewise threat recall below `min_threat_recall` on `min_labelled_threats` threat items.

The thresholds in conf/monitor/default.yaml and their measured false-alarm rate and
detection delays come from benchmarks/drift_detection.py (results/drift_detection.json).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from atr.monitor.drift_scores import SIGNALS


@dataclass(frozen=True)
class RuleDecision:
    drift: bool
    kind: str | None = None  # the signal that fired (or "performance")
    score: float | None = None  # its value in the newest window
    threshold: float | None = None
    flagged: dict[str, int] = field(default_factory=dict)  # signal -> consecutive windows


@dataclass(frozen=True)
class DriftRule:
    thresholds: Mapping[str, float | None]
    consecutive: int = 2
    min_labelled: int = 50
    max_leak_rate: float | None = None
    min_labelled_threats: int = 20
    min_threat_recall: float | None = None

    def __post_init__(self) -> None:
        if self.consecutive < 1:
            raise ValueError(f"monitor.rule.consecutive must be >= 1, got {self.consecutive}")
        unknown = set(self.thresholds) - set(SIGNALS)
        if unknown:
            raise ValueError(f"monitor.rule.thresholds: unknown signal(s) {sorted(unknown)}; "
                             f"known: {list(SIGNALS)}")

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> DriftRule:
        perf = dict(cfg.get("performance") or {})
        return cls(
            thresholds={k: None if v is None else float(v)
                        for k, v in dict(cfg.get("thresholds") or {}).items()},
            consecutive=int(cfg.get("consecutive", 2)),
            min_labelled=int(perf.get("min_labelled", 50)),
            max_leak_rate=_opt_float(perf.get("max_leak_rate")),
            min_labelled_threats=int(perf.get("min_labelled_threats", 20)),
            min_threat_recall=_opt_float(perf.get("min_threat_recall")),
        )

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
        leak, recall = perf.get("leak_rate"), perf.get("threat_recall")
        if (self.max_leak_rate is not None and leak is not None
                and perf.get("non_paper", 0) >= self.min_labelled and leak > self.max_leak_rate):
            return float(leak), self.max_leak_rate
        if (self.min_threat_recall is not None and recall is not None
                and perf.get("threat_items", 0) >= self.min_labelled_threats
                and recall < self.min_threat_recall):
            return float(recall), self.min_threat_recall
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


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
