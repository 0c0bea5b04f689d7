"""Per-scanner recalibration from frontline labels (atr.policy.recalibration): which labels
count, the leak bound q_up * M / D, the fixed-sequence walk and its floor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from policy_synth import OUTPUTS, THREATS
from scipy.stats import hypergeom

from atr.policy.decision import Policy
from atr.policy.recalibration import certify_scanner_threshold, label_sample
from atr.policy.recalibration_bounds import count_upper

TARGETS = {"leak_rate_target": 0.005, "confidence": 0.95}


def _policy(clear: float = 0.5, scanners: dict[str, float] | None = None) -> Policy:
    return Policy(outputs=OUTPUTS, clear_threshold=clear,
                  inspect_thresholds=dict.fromkeys(THREATS, 0.5),
                  scanner_clear_thresholds=scanners or {}, targets=dict(TARGETS))


@dataclass
class Window:
    """One scanner's window: would-be CLEARs (first) then items confirmed not low risk."""

    low: np.ndarray  # low-risk scores
    would_clear: np.ndarray
    labelled: np.ndarray
    truth: np.ndarray  # low-risk truth, NaN = no verdict
    threat: np.ndarray

    def certify(self, policy: Policy | None = None, **kw):
        kw.setdefault("bound", "clopper_pearson")  # the window's own bound; `future` below
        scores = np.column_stack([self.low, np.zeros((len(self.low), len(THREATS)))])
        return certify_scanner_threshold(scores, self.would_clear, self.labelled, self.truth,
                                         self.threat, policy or _policy(), scanner="b", **kw)


def _window(clears: int = 1000, labelled: int = 700, confirmed: int = 1500,
            seed: int = 0) -> Window:
    """Clean would-be CLEARs (scores 0.5..1, `labelled` of them labelled low risk, the rest
    unlabelled) and `confirmed` INSPECT items confirmed not low risk (scores < 0.5)."""
    rng = np.random.default_rng(seed)
    n = clears + confirmed
    low = np.concatenate([rng.uniform(0.5, 1.0, clears), rng.uniform(0.0, 0.45, confirmed)])
    wc = np.arange(n) < clears
    lab = np.zeros(n, bool)
    lab[rng.choice(clears, labelled, replace=False)] = True
    truth = np.where(lab, 1.0, np.nan)
    truth[clears:] = 0.0
    threat = np.where(np.isnan(truth), np.nan, 0.0)
    return Window(low, wc, lab, truth, threat)


def test_a_clean_scanner_with_enough_labels_certifies_the_floor() -> None:
    t, ev = _window().certify()
    assert t == 0.5  # every grid point passed: the global threshold re-certified
    assert (ev["M"], ev["n"], ev["k"], ev["D"]) == (1000, 700, 0, 1500)
    assert ev["leak_rate_upper"] == pytest.approx(count_upper(0, 700, 1000, 0.05) / 1500)
    assert ev["leak_rate_upper"] <= 0.005 and ev["reason"] is None
    assert ev["grid"]["to"] == 0.5 and ev["grid"]["tested"] == ev["grid"]["size"]


def test_leaks_make_the_threshold_stricter_than_them() -> None:
    w = _window()
    leaks = np.argsort(np.where(w.labelled, w.low, np.inf))[:4]  # the lowest labelled
    w.truth[leaks] = 0.0
    t, ev = w.certify()
    assert t is not None and w.low[leaks].max() < t < 0.7
    assert ev["chosen"]["k"] == 0 and ev["stopped_at"]["k"] >= 1
    assert ev["stopped_at"]["leak_rate_upper"] > 0.005 >= ev["leak_rate_upper"]


def test_the_walk_stops_at_the_first_failure() -> None:
    # The few labels among the top scores fail (4 of 11, bound 5.8 leaks of 1000) although
    # the floor alone would pass: stopping there is what keeps the search honest.
    w = _window(labelled=600, confirmed=1000)
    t, ev = w.certify()
    assert count_upper(0, 600, 1000, 0.05) / 1000 <= 0.005
    assert ev["grid"]["tested"] < ev["grid"]["size"]
    assert t is not None and t > ev["stopped_at"]["threshold"] > 0.9


def test_a_threat_among_the_top_scores_refuses_and_says_why() -> None:
    w = _window()
    top = int(np.argmax(np.where(w.labelled, w.low, -1)))
    w.truth[top], w.threat[top] = 0.0, 1.0
    t, ev = w.certify()
    assert t is None and ev["stopped_at"]["threats"] == 1
    assert "strictest" in ev["reason"] and "threat" in ev["reason"]


def test_too_few_labels_refuses() -> None:
    t, ev = _window(labelled=20).certify(min_labels=50)
    assert t is None and ev["reason"].startswith("too few labels: 20")
    # Without a minimum the bound itself refuses the floor: 20 labels bound nothing useful.
    t, ev = _window(labelled=20).certify()
    assert t is None or t > 0.9


def test_biased_labels_never_count() -> None:
    w = _window(labelled=100)
    # Thousands of labelled INSPECT items (not would-be CLEARs) would "support" the bound.
    extra = 3000
    w = Window(np.concatenate([w.low, np.full(extra, 0.95)]),
               np.concatenate([w.would_clear, np.zeros(extra, bool)]),
               np.concatenate([w.labelled, np.ones(extra, bool)]),
               np.concatenate([w.truth, np.ones(extra)]),
               np.concatenate([w.threat, np.zeros(extra)]))
    t, ev = w.certify()
    assert ev["n"] == 100 and ev["ignored_labels"] == extra
    assert t is None or t > 0.9
    # Which labels the sample holds: audits (even pending) and analyst-keyed safe-mode
    # REVIEWs of would-be CLEARs; a released item reported later or an INSPECT outcome not.
    sample = label_sample(would_clear=[1, 1, 1, 1, 0, 0], audited=[1, 0, 0, 0, 1, 0],
                          safe_mode_review=[0, 1, 1, 0, 0, 1],
                          analyst_labelled=[0, 1, 0, 1, 1, 1])
    assert sample.tolist() == [True, True, False, False, False, False]


def test_pending_audits_count_as_leaks() -> None:
    w = _window()
    pending = np.argsort(np.where(w.labelled, w.low, np.inf))[:4]
    w.truth[pending], w.threat[pending] = np.nan, np.nan
    t, ev = w.certify()
    assert ev["pending"] == 4 and ev["k"] == 4
    assert t is not None and w.low[pending].max() < t


def test_the_threshold_is_never_below_the_floor() -> None:
    w = _window()
    t, ev = w.certify(_policy(clear=0.7))
    assert t is not None and t >= 0.7 and ev["M"] == int((w.low >= 0.7).sum())
    t, ev = w.certify(_policy(clear=0.5, scanners={"b": 0.8}))
    assert t is not None and t >= 0.8 and ev["floor"] == 0.8 and ev["global_threshold"] == 0.5
    with pytest.raises(ValueError, match="below the global"):
        _policy(clear=0.5, scanners={"b": 0.4})


def test_the_denominator_is_the_confirmed_count_only() -> None:
    full_t, full = _window().certify()
    w = _window()
    w.truth[1000:1750], w.threat[1000:1750] = np.nan, np.nan  # half the items unlabelled
    t, ev = w.certify()
    assert ev["D"] == 750
    # Same labels, half the denominator: the bound doubles; the floor no longer certifies.
    assert ev["stopped_at"]["leak_rate_upper"] > 0.005 and (t is None or t > full_t)
    chosen = ev["chosen"]
    assert chosen["leak_rate_upper"] == pytest.approx(chosen["leaks_upper"] / 750)
    assert full["D"] == 1500


def test_strata_keep_a_sparse_stratum_from_hiding_behind_a_dense_one() -> None:
    # Normal mode: 1000 would-be CLEARs, 20 audited, one leak. Safe mode: 1000, 900 clean
    # analyst labels. Pooled, the 920 labels certify the floor; per stratum they cannot.
    rng = np.random.default_rng(3)
    low = np.concatenate([rng.uniform(0.5, 1, 2000), rng.uniform(0, 0.45, 3000)])
    wc = np.arange(5000) < 2000
    lab = np.zeros(5000, bool)
    lab[rng.choice(1000, 20, replace=False)] = True
    lab[1000 + rng.choice(1000, 900, replace=False)] = True
    truth = np.where(lab, 1.0, np.nan)
    truth[np.flatnonzero(lab[:1000])[0]] = 0.0
    truth[2000:] = 0.0
    threat = np.where(np.isnan(truth), np.nan, 0.0)
    w = Window(low, wc, lab, truth, threat)
    strata = ["normal"] * 1000 + ["safe_mode"] * 1000 + ["normal"] * 3000
    pooled_t, _ = w.certify()
    t, ev = w.certify(strata=strata)
    assert pooled_t == 0.5
    assert t is None or t > 0.9
    assert ev["strata"]["normal"] == {"M": 1000, "n": 20}
    # Where the walk stopped, the sparse stratum's own bound is what failed it.
    stop = ev["stopped_at"]["strata"]
    assert stop["normal"]["n"] <= 20 and stop["normal"]["k"] <= 1
    assert stop["normal"]["M"] + stop["safe_mode"]["M"] == ev["stopped_at"]["M"]
    assert stop["normal"]["count_upper"] > 0.005 * 3000 > stop["safe_mode"]["count_upper"]
    # Each stratum is bounded at half the error budget (two strata); the grid's one
    # quantile (the lowest score) tests the whole window.
    _, whole = w.certify(strata=strata, grid_size=1)
    normal = whole["stopped_at"]["strata"]["normal"]
    assert (normal["M"], normal["n"], normal["k"]) == (1000, 20, 1)
    assert normal["count_upper"] == pytest.approx(count_upper(1, 20, 1000, 0.05 / 2))
    assert ev["strata"]["safe_mode"] == {"M": 1000, "n": 900}


@pytest.mark.parametrize("bound", ["clopper_pearson", "hypergeometric"])
def test_the_count_bound_covers_the_true_count(bound: str) -> None:
    # Exact coverage for n drawn without replacement from m items, K of them not low risk:
    # P(count_upper < K) <= delta. Clopper-Pearson is checked where it is relied on
    # (shares up to 1/2); the hypergeometric bound everywhere.
    delta = 0.05
    for m in (7, 20, 40):
        for n in sorted({1, 3, m // 2, m}):
            uppers = np.array([count_upper(x, n, m, delta, bound) for x in range(n + 1)])
            top = m // 2 if bound == "clopper_pearson" else m
            for k_true in range(top + 1):
                xs = np.arange(n + 1)
                miss = hypergeom.pmf(xs, m, k_true, n)[uppers < k_true].sum()
                assert miss <= delta + 1e-12, (m, n, k_true)
    # Fully labelled, the count is known: the labelled low-risk items cap either bound.
    assert count_upper(3, 40, 40, delta, bound) == 3
    assert count_upper(0, 0, 40, delta, bound) == 40 and count_upper(0, 0, 0, delta, bound) == 0


def test_the_hypergeometric_bound_is_tighter_when_most_items_are_labelled() -> None:
    # 600 of 1000 would-be CLEARs labelled, all clean, 1000 confirmed: Clopper-Pearson,
    # blind to the population being finite, cannot certify the floor; the exact bound can.
    w = _window(labelled=600, confirmed=1000)
    cp_t, cp = w.certify()
    hg_t, hg = w.certify(bound="hypergeometric")
    assert hg_t == 0.5 and hg["leak_rate_upper"] <= 0.005
    assert cp_t is None or cp_t > hg_t
    for k, n, m in ((0, 600, 1000), (2, 50, 60), (0, 4, 11)):
        assert count_upper(k, n, m, 0.05, "hypergeometric") <= count_upper(k, n, m, 0.05)
    with pytest.raises(ValueError, match="bound"):
        w.certify(bound="normal")


def test_future_bound_certifies_a_large_clean_window() -> None:
    window = _window(clears=1000, labelled=700, confirmed=1500)
    t, ev = window.certify(bound="future")
    assert t == 0.5 and ev["leak_rate_upper"] <= 0.005
    _, own = window.certify()  # the window's own bound is the looser claim
    assert own["leak_rate_upper"] <= ev["leak_rate_upper"]
    assert ev["denominator"] < ev["D"]  # the non-low-risk share is bounded from below


def test_a_fully_labelled_small_window_is_exact_for_itself_not_for_what_comes() -> None:
    # 69 would-be CLEARs, all labelled, none leaked, 649 confirmed not low risk: the window's
    # own leak count is known (0), but 69 clean labels cannot bound the next items at 0.5 %
    window = _window(clears=69, labelled=69, confirmed=649)
    t_own, own = window.certify(bound="hypergeometric")
    assert t_own == 0.5 and own["leak_rate_upper"] == 0.0
    t, ev = window.certify(bound="future")
    assert t is None and "fails" in ev["reason"]


def test_future_bound_covers_the_coming_items() -> None:
    """Windows drawn from a stream whose would-be CLEARs leak at 1 % (twice the target):
    the future bound certifies such a threshold in far fewer than 5 % of the windows."""
    rng = np.random.default_rng(11)
    certified = 0
    for _ in range(200):
        clears, confirmed = 1200, 1500
        w = _window(clears=clears, labelled=900, confirmed=confirmed, seed=int(rng.integers(1e9)))
        leak = rng.random(clears) < 0.01 * confirmed / clears  # true leak rate 1 %
        w.truth[:clears] = np.where(w.labelled[:clears], np.where(leak, 0.0, 1.0), np.nan)
        t, _ = w.certify(bound="future", grid_size=1)  # the floor only: one test
        certified += t is not None
    assert certified <= 10, certified
