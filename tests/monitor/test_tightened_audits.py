"""The leak test counted in cleared items under tightened audits: the chain against seeded
simulations of the switching rule as serving runs it, the calibrated threshold is the
smallest within the budget, without tightening the chain is the per-audit one mixed over
a binomial number of audits, and tightening shortens the delay at twice the target."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from atr.monitor.leak_rate import LeakRule, alarm_cdf, design_for, lattice
from atr.monitor.tightened_audits import (
    alarm_cdf_cleared,
    alarm_within,
    calibrated_cleared,
    mean_share,
    simulate_first_alarms,
)

TARGET = 0.005
RULE = LeakRule()
DESIGN = design_for(RULE, TARGET)
SHARE, TIGHT = RULE.audit_share, RULE.tightened_share


def simulate(design, p: float, n: int, runs: int, seed: int) -> np.ndarray:  # noqa: ANN001
    return simulate_first_alarms(design, p, n, SHARE, TIGHT, runs,
                                 np.random.default_rng(seed))


def test_chain_matches_the_simulated_switching_rule() -> None:
    runs, n = 4000, RULE.horizon_cleared
    alarms = simulate(DESIGN, TARGET, n, runs, seed=5) > 0
    expected = alarm_within(DESIGN, TARGET, n, SHARE, TIGHT)
    assert expected == pytest.approx(alarm_cdf_cleared(DESIGN, TARGET, n, SHARE, TIGHT)[-1],
                                     abs=1e-9)
    se = math.sqrt(expected * (1 - expected) / runs)
    assert alarms.mean() == pytest.approx(expected, abs=3 * se)
    assert alarms.mean() <= RULE.false_alarm + 3 * se  # the budget, in cleared items
    # at twice the target, the chain's median delay against the simulated one
    delays = simulate(DESIGN, 2 * TARGET, 30_000, 1000, seed=6)
    cdf = alarm_cdf_cleared(DESIGN, 2 * TARGET, 30_000, SHARE, TIGHT)
    chain_median = int(np.searchsorted(cdf, 0.5)) + 1
    simulated = np.median(np.where(delays > 0, delays, np.iinfo(np.int64).max))
    assert simulated == pytest.approx(chain_median, rel=0.12)


def test_threshold_is_the_smallest_meeting_the_budget() -> None:
    n = RULE.horizon_cleared
    assert alarm_within(DESIGN, TARGET, n, SHARE, TIGHT) <= RULE.false_alarm
    lower = lattice(TARGET, RULE.ratio, DESIGN.units - 1)
    assert alarm_within(lower, TARGET, n, SHARE, TIGHT) > RULE.false_alarm


def test_without_tightening_it_is_the_audit_chain_over_binomial_audits() -> None:
    """Tightened share <= the normal one: P(alarm within n cleared items) is the per-audit
    chain's P(alarm within k audits), k ~ Binomial(n, share)."""
    n, share = 20_000, 0.02
    design = calibrated_cleared(TARGET, 2.0, 0.05, n, share, 0.0)
    k = np.arange(0, 1001)
    per_audit = np.r_[0.0, alarm_cdf(design, TARGET, 1000)]
    mixed = float(binom.pmf(k, n, share) @ per_audit)
    assert alarm_within(design, TARGET, n, share, 0.0) == pytest.approx(mixed, rel=1e-6)


def test_tightening_buys_a_shorter_delay_for_more_audits() -> None:
    fixed = calibrated_cleared(TARGET, 2.0, 0.05, 20_000, SHARE, 0.0)

    def median(design, tight: float) -> int:  # noqa: ANN001
        cdf = alarm_cdf_cleared(design, 2 * TARGET, 60_000, SHARE, tight)
        return int(np.searchsorted(cdf, 0.5)) + 1

    assert median(DESIGN, TIGHT) < median(fixed, 0.0) / 2  # same false-alarm budget
    workload = mean_share(DESIGN, TARGET, SHARE, TIGHT)
    assert SHARE < workload < 4 * SHARE
    assert mean_share(DESIGN, TARGET / 10, SHARE, TIGHT) < workload  # a clean line: fewer
