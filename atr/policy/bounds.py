"""Exact binomial (Clopper–Pearson) confidence bounds for error rates.

Every rate the policy claims (leak rate, threats cleared, threat recall) is a
binomial proportion over a labelled set, so its bound comes from the beta
quantiles of scipy rather than a normal approximation, which is badly wrong at
the near-zero rates a screening line works at.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import beta


class Interval(NamedTuple):
    """One-sided bounds: each of `lower` and `upper` holds alone at the stated confidence."""

    lower: float
    upper: float


def clopper_pearson(k: int, n: int, conf: float = 0.95) -> Interval:
    """One-sided Clopper–Pearson bounds on a binomial rate from k events in n trials.

    `upper` is the value the true rate lies below with probability `conf`
    (the claim made for leak rates); `lower` the value it lies above with
    probability `conf` (the claim made for recall). One-sided because each
    safety claim is one-sided: k=0, n=598, conf=0.95 gives upper ≈ 0.005.
    With n = 0 nothing is known: (0, 1).
    """
    if not 0.0 < conf < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {conf}")
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    lower = 0.0 if k == 0 else float(beta.ppf(1.0 - conf, k, n - k + 1))
    upper = 1.0 if k == n else float(beta.ppf(conf, k + 1, n - k))
    return Interval(lower, upper)


def clopper_pearson_upper_many(k: ArrayLike, n: int, conf: float) -> np.ndarray:
    """Vectorised `clopper_pearson(k, n, conf).upper` over an integer array k (threshold sweeps)."""
    k = np.asarray(k)
    if n <= 0 or np.any((k < 0) | (k > n)):
        raise ValueError(f"need 0 <= k <= n for all k, n={n}")
    # beta's second shape must stay positive; the k == n rows are replaced by 1 anyway.
    upper = beta.ppf(conf, k + 1, np.maximum(n - k, 1))
    return np.where(k >= n, 1.0, upper)


def min_trials_for_zero_events(target: float, conf: float) -> int:
    """Smallest n for which zero events bound the rate at or below `target`.

    Zero events give upper = 1 - (1 - conf)^(1/n); solving upper <= target gives
    n >= ln(1 - conf) / ln(1 - target) (598 at target 0.005, conf 0.95).
    """
    if not 0.0 < target < 1.0:
        raise ValueError(f"target rate must lie in (0, 1), got {target}")
    n = math.ceil(math.log(1.0 - conf) / math.log(1.0 - target) - 1e-9)
    # Guard the float edge: step until the exact bound really meets the target.
    while clopper_pearson(0, n, conf).upper > target:
        n += 1
    return n
