"""The leak test counted in cleared items, under tightened audits (a switching rule).

Serving audits a `share` of a scanner's would-be CLEARs while its leak CUSUM is at 0, and
a `tightened` share while it is above 0, i.e. from an audited leak until the clean audits
after it have paid that evidence back (serve.audit_tightened_share; ISO 2859-1's
normal -> tightened inspection, driven by the monitor's own statistic). At a fixed 2 %
share the first audited leak alone takes a median of ln 2 / (0.02 x 1 %) = 3 466 cleared
items at twice the target; tightening spends the extra audits where the evidence is,
instead of everywhere (benchmarks/leak_monitor.py measures both).

Why the test stays valid. Whether an item is audited depends on the draw (independent of
its content) and on earlier audits' outcomes, never on its own; so the audited items'
outcomes are still i.i.d. Bernoulli(leak rate) and the CUSUM's law per audit is the same.
What tightening changes is how many audits a stretch of cleared items holds, so the
false-alarm budget is set here per `horizon` *cleared items*: the chain below walks the
CUSUM's lattice one cleared item at a time (stay with 1 - s(W), a clean audit with
s(W)(1 - p), a leak with s(W) p) and is exact for the switching rule. The monitor's delay
(an outcome comes back, the next pass, serving's next state read) only postpones the
switch to the tightened share, so a stretch holds no more audits than the chain counts:
the budget stays an upper bound.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.sparse import csr_matrix

from atr.monitor.leak_rate import CusumDesign, lattice


def shares(design: CusumDesign, share: float, tightened: float) -> np.ndarray:
    """The audit share in each lattice state: `share` at W = 0, the larger one above."""
    return np.where(np.arange(design.units) > 0, max(share, tightened), share)


def _transitions(design: CusumDesign, p: float, share: float,
                 tightened: float) -> csr_matrix:
    """T[to, from] for one cleared item over the states below the threshold (an alarm
    leaves the chain)."""
    units, up, down = design.units, design.up, design.down
    s, w = shares(design, share, tightened), np.arange(units)
    rises = w + up < units
    rows = np.r_[w, np.maximum(w - down, 0), (w + up)[rises]]
    cols = np.r_[w, w, w[rises]]
    vals = np.r_[1 - s, s * (1 - p), (s * p)[rises]]
    return csr_matrix((vals, (rows, cols)), shape=(units, units))


def alarm_cdf_cleared(design: CusumDesign, p: float, n: int, share: float,
                      tightened: float) -> np.ndarray:
    """P(first alarm at or before cleared item t), t = 1..n, from W = 0."""
    step = _transitions(design, p, share, tightened)
    state = np.zeros(design.units)
    state[0] = 1.0
    out = np.empty(n)
    for t in range(n):
        state = step @ state
        out[t] = 1.0 - state.sum()
    return np.clip(out, 0.0, 1.0)


def alarm_within(design: CusumDesign, p: float, n: int, share: float,
                 tightened: float, stride: int = 32) -> float:
    """alarm_cdf_cleared(...)[-1], `stride` cleared items per sparse product (the
    calibration's bisection asks it ~10 times)."""
    step = _transitions(design, p, share, tightened)
    jump = step
    for _ in range(stride - 1):
        jump = jump @ step
    state = np.zeros(design.units)
    state[0] = 1.0
    for _ in range(n // stride):
        state = jump @ state
    for _ in range(n % stride):
        state = step @ state
    return float(min(1.0, max(0.0, 1.0 - state.sum())))


def mean_share(design: CusumDesign, p: float, share: float, tightened: float,
               n: int = 20_000) -> float:
    """The average audit share over n cleared items without an alarm at leak rate p: the
    audit workload the switching rule costs."""
    step, s = _transitions(design, p, share, tightened), shares(design, share, tightened)
    state = np.zeros(design.units)
    state[0] = 1.0
    audited = 0.0
    for _ in range(n):
        audited += float(state @ s)
        state = step @ state
        state /= max(state.sum(), 1e-300)  # condition on no alarm yet
    return audited / n


@lru_cache(maxsize=64)
def calibrated_cleared(p0: float, ratio: float, false_alarm: float, horizon: int,
                       share: float, tightened: float) -> CusumDesign:
    """The smallest lattice threshold with P(alarm within `horizon` cleared items at p0)
    <= `false_alarm` under the switching rule (bisection: the probability falls as the
    threshold rises)."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"audit share must lie in (0, 1], got {share}")
    base = lattice(p0, ratio)
    audits = horizon * max(share, tightened)  # at most this many audits in the horizon

    def ok(units: int) -> bool:
        design = lattice(p0, ratio, units)
        return alarm_within(design, p0, horizon, share, tightened) <= false_alarm

    hi = math.ceil(math.log(max(audits, 1.0) / false_alarm) / base.unit) + base.up
    while not ok(hi):  # the union bound over every audit: a hair short after rounding
        hi *= 2
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid + 1, hi)
    return lattice(p0, ratio, lo)


def simulate_first_alarms(design: CusumDesign, p: float, n: int, share: float,
                          tightened: float, runs: int,
                          rng: np.random.Generator) -> np.ndarray:
    """Cleared items to the first alarm (0: none within n) of `runs` seeded streams, each
    item audited with the share its CUSUM state gives, as serving and the monitor run it
    (the statistic read at once): the check on the chains above."""
    w, first = np.zeros(runs, np.int64), np.zeros(runs, np.int64)
    for t in range(1, n + 1):
        live = first == 0
        audited = live & (rng.random(runs) < np.where(w > 0, max(share, tightened), share))
        leak = rng.random(runs) < p
        w = np.where(audited, np.where(leak, w + design.up, np.maximum(w - design.down, 0)), w)
        first[live & (w >= design.units)] = t
    return first
