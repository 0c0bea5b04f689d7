"""The leak-count bounds of recalibration (atr.policy.recalibration): from a random sample
of a scanner's would-be CLEARs, how many of them can be not low risk, for the window's own
items or for the scanner's coming items."""

from __future__ import annotations

from scipy.stats import hypergeom

from atr.policy.bounds import clopper_pearson


def leak_denominator(d: int, n_rows: int, confidence: float, bound: str) -> float:
    """The leak rate's denominator: the confirmed count (the window's own bound), or for
    coming items the lower bound on their non-low-risk share times N (a third of delta)."""
    if bound != "future":
        return float(d)
    return n_rows * clopper_pearson(d, n_rows, 1.0 - (1.0 - confidence) / 3.0).lower


def future_share_upper(k: int, n: int, delta: float) -> float:
    """Upper bound on the not-low-risk share of a stratum's would-be CLEARs (at t) among
    the scanner's coming items: binomial, no cap (a fully labelled window says nothing exact
    about the next one); 1 when nothing of the stratum is labelled."""
    return 1.0 if n == 0 else clopper_pearson(k, n, 1.0 - delta).upper


def future_leaks_upper(would_clear: int, n_rows: int, share_upper: float, delta: float
                       ) -> float:
    """Released leaks per `n_rows` coming items: N x the would-be CLEAR share's upper bound
    (from `would_clear` of the window's `n_rows`, at 1 - delta) x `share_upper`."""
    return n_rows * clopper_pearson(would_clear, n_rows, 1.0 - delta).upper * share_upper


def count_upper(k: int, n: int, m: int, delta: float, bound: str = "clopper_pearson") -> float:
    """Upper bound, at level 1 - delta, on how many of m items are not low risk, from k of
    n drawn at random among them (q_up * m)."""
    if m == 0:
        return 0.0
    if n == 0:
        return float(m)
    if bound == "clopper_pearson":
        # The n - k labelled low-risk items are known not to leak: a sure cap on the count.
        return min(float(m) * clopper_pearson(k, n, 1.0 - delta).upper, float(m - n + k))
    # Largest K with P(X <= k | K) > delta; the cdf falls as K grows: bisect.
    lo, hi = k, m - (n - k)  # K is at least the k seen, at most m less the low-risk seen
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if hypergeom.cdf(k, m, mid, n) > delta:
            lo = mid
        else:
            hi = mid - 1
    return float(lo)
