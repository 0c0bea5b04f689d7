"""The live leak rate: audited CLEARs, their Clopper–Pearson bound and a sequential test.

Serving sends a random share of the items it would CLEAR to inspection (audits). Each
audit with an inspection outcome is one Bernoulli trial: a *leak* when the item was not
low risk. Two figures come out of the same outcomes:

  rate, upper  leaks / audits and the one-sided Clopper–Pearson bound at `confidence`:
               what the line shows of the certified claim (all of a version's audits).
  alarm        a Bernoulli CUSUM (Page's test) of p1 = ratio x target against p0 = target,
               on the outcomes in the order they came back.

Why a CUSUM. The question on the line is "has the leak rate gone up since it was fine",
a change at an unknown time. A one-sided SPRT (or the cumulative log-likelihood ratio)
keeps the evidence for p0 that a long in-control stretch piles up, so after n good audits
a later change must first pay back ~ n x KL(p0||p1) nats; the CUSUM W_n =
max(0, W_{n-1} + llr_n) forgets it (reflection at 0) and reacts as fast after a year as
on day one (benchmarks/leak_monitor.py measures both). Page's CUSUM is optimal for that
problem (Lorden 1971, Moustakides 1986). A confidence sequence (beta-binomial mixture) is
the alternative: anytime-valid over an unbounded horizon, but it tests the cumulative
rate, so it shares the SPRT's dilution by old good audits, and a false-alarm budget over
an infinite horizon buys a higher threshold than a line that restarts after each alarm
needs.

Valid when checked after every batch: the statistic is a function of the outcome
sequence alone, and the alarm is "W crossed h at some audit", not "W >= h now"; however
often a pass looks, it sees the same crossing at the same audit. The job orders outcomes
by arrival, so each pass only appends to the sequence a previous one saw.

The threshold h. The log-likelihood steps are put on an integer lattice (non-leak -q,
leak +m with m/q = log(p1/p0) / log((1-p0)/(1-p1)) to 0.5 %), the test the job runs *is*
that lattice walk, so its run-length distribution is an exact Markov chain (Brook & Evans
1972): h is the smallest lattice threshold with P_p0(alarm within `horizon_cleared`
cleared items) <= `false_alarm`, computed, not bounded; that chain walks cleared items,
so that it counts the audits serving's tightened share adds (atr.monitor.tightened_audits).
(Over a fixed 400 audits the union bound N e^-h <= alpha gives h = log(N/alpha) = 9.0 at
5 % instead of the exact 2.09, and 5.7 times the expected audits to an alarm at 2 x
target: 4 194 against 733.) `min_audits` > 0 holds
alarms back for the first audits; it can only remove alarms, so the budget still holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from atr.policy.audit import DEFAULT_AUDIT_SHARE, DEFAULT_TIGHTENED_SHARE
from atr.structured import to_dataclass

LATTICE_STEPS = 100  # the larger step is >= this many lattice units: m/q within 0.5 %


@dataclass(frozen=True)
class LeakRule:
    """`monitor.leak` (conf/monitor/default.yaml overrides these defaults)."""

    target: float | None = None  # None: the champion policy's targets.leak_rate_target
    ratio: float = 2.0  # the rate the CUSUM is tuned to catch: ratio x target
    # P(false alarm within `horizon_cleared` cleared items at the target) <= false_alarm, under the
    # audit plan below. 0.05 keeps false safe modes rare; 0.63 gives 0.97 expected false
    # alarms in 20 000 and a median alarm within 4 792 cleared items at 2 x target (issue
    # 13's targets as written; benchmarks/results/leak_monitor_tightened.json).
    false_alarm: float = 0.05
    horizon_cleared: int = 20_000
    # The audit plan the threshold assumes: serve.audit_share and serve.audit_tightened_share
    # (set them alike; a smaller real share only makes false alarms rarer).
    audit_share: float = DEFAULT_AUDIT_SHARE
    tightened_share: float = DEFAULT_TIGHTENED_SHARE
    min_audits: int = 0  # no alarm on fewer outcomes since the restart (0: h alone decides)
    confidence: float = 0.95  # of the Clopper–Pearson upper bound

    def __post_init__(self) -> None:
        if self.target is not None and not 0.0 < self.target < 1.0:
            raise ValueError(f"monitor.leak.target must lie in (0, 1), got {self.target}")
        if self.ratio <= 1.0:
            raise ValueError(f"monitor.leak.ratio must be > 1, got {self.ratio}")
        if not 0.0 < self.false_alarm < 1.0:
            raise ValueError(f"monitor.leak.false_alarm must lie in (0, 1), got "
                             f"{self.false_alarm}")
        if self.horizon_cleared < 1 or self.min_audits < 0:
            raise ValueError("monitor.leak.horizon_cleared must be >= 1 and min_audits >= 0")
        if not 0.0 < self.audit_share <= 1.0 or not 0.0 <= self.tightened_share <= 1.0:
            raise ValueError("monitor.leak.audit_share must lie in (0, 1] and "
                             "tightened_share in [0, 1]")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"monitor.leak.confidence must lie in (0, 1), got "
                             f"{self.confidence}")

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> LeakRule:
        return to_dataclass(cls, cfg, "monitor.leak")


@dataclass(frozen=True)
class CusumDesign:
    """The lattice CUSUM: a leak adds `up`, a non-leak takes `down`, alarm at >= `units`."""

    p0: float
    p1: float
    up: int
    down: int
    unit: float  # nats per lattice unit (a non-leak's log-likelihood ratio is exact)
    units: int  # the threshold in lattice units

    @property
    def h(self) -> float:
        return self.units * self.unit


def lattice(p0: float, ratio: float, units: int = 1) -> CusumDesign:
    """The lattice of p1 = ratio x p0 with a threshold of `units` lattice units."""
    p1 = ratio * p0
    if not 0.0 < p0 < p1 < 1.0:
        raise ValueError(f"leak test needs 0 < target < ratio x target < 1, got {p0}, {p1}")
    up_nats, down_nats = math.log(p1 / p0), math.log((1 - p0) / (1 - p1))
    down = max(1, math.ceil(LATTICE_STEPS * down_nats / up_nats))
    up = max(1, round(down * up_nats / down_nats))
    return CusumDesign(p0, p1, up, down, down_nats / down, max(1, units))


@lru_cache(maxsize=64)
def calibrated(p0: float, ratio: float, false_alarm: float, horizon: int) -> CusumDesign:
    """The smallest threshold whose false-alarm probability within `horizon` audits at
    p0 is <= `false_alarm` (the probability falls as the threshold rises: bisection)."""
    base = lattice(p0, ratio)
    hi = math.ceil(math.log(horizon / false_alarm) / base.unit) + base.up  # union bound
    while alarm_cdf(lattice(p0, ratio, hi), p0, horizon)[-1] > false_alarm:
        hi *= 2  # the lattice's rounded leak step can leave the union bound a hair short
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        if alarm_cdf(lattice(p0, ratio, mid), p0, horizon)[-1] <= false_alarm:
            hi = mid
        else:
            lo = mid + 1
    return lattice(p0, ratio, lo)


def design_for(rule: LeakRule, target: float) -> CusumDesign:
    """The threshold for `target` under the rule's audit plan, counted in cleared items."""
    from atr.monitor.tightened_audits import calibrated_cleared

    return calibrated_cleared(float(target), float(rule.ratio), float(rule.false_alarm),
                              int(rule.horizon_cleared), float(rule.audit_share),
                              float(rule.tightened_share))


def cusum_path(outcomes: np.ndarray, design: CusumDesign) -> np.ndarray:
    """W_n in lattice units along the last axis: W_n = S_n - min(0, min_k<=n S_k), the
    closed form of W_n = max(0, W_{n-1} + step_n) (vectorised over runs)."""
    steps = np.where(np.asarray(outcomes, bool), design.up, -design.down).astype(np.int64)
    walk = np.cumsum(steps, axis=-1)
    return walk - np.minimum(np.minimum.accumulate(walk, axis=-1), 0)


def first_alarms(outcomes: np.ndarray, design: CusumDesign, min_audits: int = 0) -> np.ndarray:
    """Audits until the first alarm along the last axis (1-based count; 0: none yet)."""
    path = cusum_path(outcomes, design)
    hits = path >= design.units
    hits[..., : max(0, min_audits - 1)] = False
    return np.where(hits.any(axis=-1), hits.argmax(axis=-1) + 1, 0)


def alarm_cdf(design: CusumDesign, p: float, n: int) -> np.ndarray:
    """P(first alarm at or before audit t), t = 1..n, for i.i.d. outcomes with leak
    probability p, starting at W = 0: the lattice Markov chain, exactly."""
    units, up, down = design.units, design.up, design.down
    state = np.zeros(units)
    state[0] = 1.0
    out, alarmed = np.empty(n), 0.0
    for t in range(n):
        nxt = np.zeros(units)
        nxt[0] = (1 - p) * state[:down].sum()  # non-leaks near 0 are reflected at 0
        if down < units:
            nxt[: units - down] += (1 - p) * state[down:]
        if up < units:
            nxt[up:] += p * state[: units - up]
        alarmed += p * state[max(0, units - up):].sum()
        out[t], state = alarmed, nxt
    return out


def expected_alarms(design: CusumDesign, p: float, n: int) -> float:
    """Expected alarms within n audits when the test restarts after each (as it does after
    a lift): the renewal function m(n) = F(n) + sum_s f(s) m(n - s) of the run length."""
    return renewal(alarm_cdf(design, p, n))


def renewal(cdf: np.ndarray) -> float:
    """m(n) for the run-length distribution `cdf` (P(first alarm <= t), t = 1..n)."""
    n = len(cdf)
    pmf = np.diff(cdf, prepend=0.0)  # pmf[s - 1] = P(first alarm at step s)
    m = np.zeros(n + 1)
    for t in range(1, n + 1):
        m[t] = cdf[t - 1] + float(np.dot(pmf[:t], m[t - 1 :: -1][:t]))
    return float(m[n])


@lru_cache(maxsize=256)
def average_run_length(design: CusumDesign, p: float) -> float:
    """Expected audits to the first alarm from W = 0 at leak probability p: (I - Q) L = 1
    over the chain's transient states."""
    from scipy.sparse import csc_matrix, identity
    from scipy.sparse.linalg import spsolve

    units, s = design.units, np.arange(design.units)
    stays = s + design.up < units
    rows = np.r_[s, s[stays]]
    cols = np.r_[np.maximum(s - design.down, 0), (s + design.up)[stays]]
    vals = np.r_[np.full(units, 1 - p), np.full(int(stays.sum()), p)]
    q = csc_matrix((vals, (rows, cols)), shape=(units, units))
    return float(np.atleast_1d(spsolve(identity(units, format="csc") - q, np.ones(units)))[0])


def leak_figures(outcomes: Sequence[bool], target: float, rule: LeakRule | None = None,
                 since: int = 0) -> dict[str, Any]:
    """Rate and Clopper–Pearson bound over all `outcomes` (True = leak), the CUSUM over
    outcomes[since:] (those after the last restart), in the order given."""
    from atr.policy.bounds import clopper_pearson

    rule = rule or LeakRule()
    x = np.asarray(outcomes, bool).reshape(-1)
    if not 0 <= since <= len(x):
        raise ValueError(f"since must lie in [0, {len(x)}], got {since}")
    design = design_for(rule, target)
    n, k = len(x), int(x.sum())
    test = x[since:]
    path = cusum_path(test, design) if len(test) else np.zeros(1, np.int64)
    first = int(first_alarms(test, design, rule.min_audits)) if len(test) else 0
    return {
        "audits": n, "leaks": k, "rate": k / n if n else None,
        "upper": clopper_pearson(k, n, rule.confidence).upper if n else None,
        "confidence": rule.confidence, "target": float(target), "ratio": rule.ratio,
        "test_audits": len(test), "test_leaks": int(test.sum()),
        "statistic": float(path[-1] * design.unit), "peak": float(path.max() * design.unit),
        "threshold": design.h, "alarm": first > 0, "alarm_after": first or None,
        "statistic_at_alarm": float(path[first - 1] * design.unit) if first else None,
        "false_alarm": rule.false_alarm, "horizon_cleared": rule.horizon_cleared,
        "audit_share": rule.audit_share, "tightened_share": rule.tightened_share,
        "min_audits": rule.min_audits,
        # the design's expected audits to an alarm at the target and at ratio x target
        "arl_target": round(average_run_length(design, design.p0), 1),
        "arl_ratio": round(average_run_length(design, design.p1), 1),
    }
