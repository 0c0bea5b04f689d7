"""The live leak figures: Clopper–Pearson on known counts, the lattice CUSUM against the
plain recursion, its exact false-alarm calibration against seeded simulations, alarms at
a clearly higher rate, and an alarm that stays raised however often it is checked."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import beta

from atr.monitor.leak_rate import (
    LeakRule,
    alarm_cdf,
    average_run_length,
    cusum_path,
    design_for,
    first_alarms,
    leak_figures,
)

TARGET = 0.005
RULE = LeakRule()  # ratio 2, P(false alarm within 20 000 cleared items) <= 5 %
DESIGN = design_for(RULE, TARGET)
ALARM_LEAKS = math.ceil(DESIGN.units / DESIGN.up)  # leaks in a row that cross h
# The per-audit chain's checks: a fixed 400 audits (20 000 cleared items at a 2 % share
# without tightening; tests/monitor/test_tightened_audits.py checks the cleared-item chain)
AUDITS = 400


def plain_cusum(outcomes: list[bool], p0: float, p1: float) -> list[float]:
    """Page's recursion in nats, W = max(0, W + llr), written out."""
    w, out = 0.0, []
    for leak in outcomes:
        w = max(0.0, w + (math.log(p1 / p0) if leak else math.log((1 - p1) / (1 - p0))))
        out.append(w)
    return out


def test_rate_and_clopper_pearson_upper_on_known_counts() -> None:
    outcomes = [False] * 98 + [True] * 2
    fig = leak_figures(outcomes, TARGET)
    assert (fig["audits"], fig["leaks"], fig["rate"]) == (100, 2, 0.02)
    assert fig["upper"] == pytest.approx(beta.ppf(0.95, 3, 98))  # one-sided, k + 1, n - k
    assert fig["upper"] == pytest.approx(0.0616, abs=1e-4)
    none = leak_figures([False] * 598, TARGET)  # 598 clean audits bound the rate at 0.5 %
    assert none["upper"] == pytest.approx(TARGET, abs=2e-5) and none["alarm"] is False
    empty = leak_figures([], TARGET)
    assert (empty["audits"], empty["rate"], empty["upper"], empty["alarm"]) == (0, None, None,
                                                                                 False)


def test_lattice_cusum_follows_page_recursion() -> None:
    rng = np.random.default_rng(3)
    outcomes = list(rng.random(3000) < 0.02)
    lattice_nats = cusum_path(np.array(outcomes), DESIGN) * DESIGN.unit
    exact = np.array(plain_cusum(outcomes, TARGET, 2 * TARGET))
    # non-leak steps are exact, the leak step is rounded by < 0.5 %
    assert np.max(np.abs(lattice_nats - exact)) < 0.005 * (exact.max() + 1)
    assert (DESIGN.up, DESIGN.down) == (138, 1)  # log 2 / -log(0.99/0.995) = 137.6


def test_reflection_forgets_a_long_in_control_stretch() -> None:
    """Unlike a cumulative likelihood ratio (SPRT), 5 000 clean audits before the leaks
    leave the statistic where the leaks alone put it."""
    leaks = [True, False, True, True]
    assert leak_figures([False] * 5000 + leaks, TARGET)["statistic"] == pytest.approx(
        leak_figures(leaks, TARGET)["statistic"])
    cumulative = float(np.cumsum(np.where([False] * 5000 + leaks, DESIGN.up, -DESIGN.down))[-1])
    assert cumulative < 0  # what an SPRT would still be paying back


def test_false_alarms_per_audit_match_the_chain() -> None:
    """Seeded streams of 400 audits at the target: the share with an alarm matches the
    per-audit Markov chain (3 standard errors)."""
    runs = 20_000
    rng = np.random.default_rng(11)
    alarms = first_alarms(rng.random((runs, AUDITS)) < TARGET, DESIGN) > 0
    share = alarms.mean()
    expected = alarm_cdf(DESIGN, TARGET, AUDITS)[-1]
    se = math.sqrt(expected * (1 - expected) / runs)
    assert share == pytest.approx(expected, abs=3 * se)
    assert expected < RULE.false_alarm  # 400 audits: fewer than the horizon's tightened ones


def test_alarms_at_a_clearly_higher_rate() -> None:
    rng = np.random.default_rng(12)
    quadruple = first_alarms(rng.random((2000, 1000)) < 4 * TARGET, DESIGN)
    assert (quadruple > 0).mean() > 0.95  # 4 x target: nearly always within 1 000 audits
    double = first_alarms(rng.random((2000, 6000)) < 2 * TARGET, DESIGN)
    assert (double > 0).mean() > 0.99
    # the chain's expected audits to an alarm at 2 x target, checked by simulation
    assert double[double > 0].mean() == pytest.approx(
        average_run_length(DESIGN, 2 * TARGET), rel=0.06)
    assert average_run_length(DESIGN, TARGET) > 5 * average_run_length(DESIGN, 2 * TARGET)


def test_alarm_stays_raised_however_often_it_is_checked() -> None:
    """Crossing then falling back below h: every later look still reports the alarm at the
    same audit (the statistic alone would not)."""
    k = ALARM_LEAKS
    outcomes = [False] * 50 + [True] * k + [False] * 900
    looks = [leak_figures(outcomes[:n], TARGET) for n in range(1, len(outcomes) + 1)]
    first = next(i for i, f in enumerate(looks) if f["alarm"])
    assert first == 49 + k and all(f["alarm"] and f["alarm_after"] == 50 + k
                                   for f in looks[first:])
    last = looks[-1]
    assert last["statistic"] < last["threshold"] <= last["statistic_at_alarm"]


def test_since_restarts_the_test_not_the_rate() -> None:
    k = ALARM_LEAKS
    outcomes = [True] * k + [False] * 10
    restarted = leak_figures(outcomes, TARGET, since=k)
    assert restarted["alarm"] is False and restarted["test_audits"] == 10
    assert (restarted["audits"], restarted["leaks"]) == (10 + k, k)
    assert leak_figures(outcomes, TARGET)["alarm"] is True


def test_min_audits_holds_early_alarms_back() -> None:
    k = ALARM_LEAKS
    outcomes = [True] * k + [False] * DESIGN.units
    held = leak_figures(outcomes, TARGET, LeakRule(min_audits=DESIGN.units))
    assert held["alarm"] is False  # k leaks, then W fell below h before the minimum
    assert leak_figures(outcomes, TARGET)["alarm_after"] == k


@pytest.mark.parametrize("bad", [{"ratio": 1.0}, {"false_alarm": 0.0}, {"horizon_cleared": 0},
                                 {"audit_share": 0.0}, {"tightened_share": 1.5},
                                 {"target": 1.5}, {"confidence": 1.0}, {"min_audits": -1}])
def test_rule_refuses_impossible_settings(bad: dict) -> None:
    with pytest.raises(ValueError, match="monitor.leak"):
        LeakRule(**bad)


def test_target_times_ratio_must_stay_below_one() -> None:
    with pytest.raises(ValueError, match="ratio x target"):
        leak_figures([True], 0.6)
