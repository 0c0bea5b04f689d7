"""Synthetic score distributions with known truth for the policy tests (a uniquely
named module, not a conftest, so that it never collides with tests/conftest.py).

Scores are drawn from beta distributions per truth category, so the true leak
rate at any clear threshold is known exactly: NONPAPER_PAPER_SCORE.sf(t).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import beta

THREATS = ["knife", "firearm"]
OUTPUTS = ["paper_only", *THREATS]
# paper_only score: paper-only items high, every other item (goods or threat) low.
PAPER_PAPER_SCORE = beta(8.0, 1.5)
NONPAPER_PAPER_SCORE = beta(1.5, 8.0)
# threat score: items of that class high, all others low.
THREAT_POSITIVE_SCORE = beta(5.0, 1.5)
THREAT_NEGATIVE_SCORE = beta(1.0, 15.0)


@dataclass
class Sample:
    scores: np.ndarray  # N x 3 in OUTPUTS order
    paper_only: np.ndarray  # N, 0/1
    threats: np.ndarray  # N x 2, 0/1


def make_sample(n: int, seed: int, paper_share: float = 0.5, threat_share: float = 0.1) -> Sample:
    rng = np.random.default_rng(seed)
    category = rng.choice(3, size=n, p=[paper_share, 1 - paper_share - threat_share, threat_share])
    paper = (category == 0).astype(int)
    threats = np.zeros((n, len(THREATS)), dtype=int)
    threat_items = np.flatnonzero(category == 2)
    threats[threat_items, rng.integers(0, len(THREATS), size=threat_items.size)] = 1

    scores = np.empty((n, len(OUTPUTS)))
    scores[:, 0] = np.where(
        paper == 1,
        PAPER_PAPER_SCORE.rvs(size=n, random_state=rng),
        NONPAPER_PAPER_SCORE.rvs(size=n, random_state=rng),
    )
    for j in range(len(THREATS)):
        scores[:, 1 + j] = np.where(
            threats[:, j] == 1,
            THREAT_POSITIVE_SCORE.rvs(size=n, random_state=rng),
            THREAT_NEGATIVE_SCORE.rvs(size=n, random_state=rng),
        )
    return Sample(scores, paper, threats)


# The model's first output under the `no_threat` definition: any bag without a threat is
# low risk (goods included), so goods score high on it too.
OUTPUTS_NO_THREAT = ["no_threat", *THREATS]


@dataclass
class NoThreatSample:
    scores: np.ndarray  # N x 3 in OUTPUTS_NO_THREAT order
    no_threat: np.ndarray  # N, 0/1: the low-risk truth
    paper_only: np.ndarray  # N, 0/1 (paper-only items are no-threat items too)
    threats: np.ndarray  # N x 2, 0/1


def make_no_threat_sample(n: int, seed: int, threat_share: float = 0.3,
                          unverified_share: float = 0.05) -> NoThreatSample:
    """Paper (30 %), goods, threat items and `unverified` ones (no threat labelled, but the
    source's labels do not cover them: no_threat = 0). Low-risk items (paper and goods)
    score PAPER_PAPER_SCORE on no_threat, the rest NONPAPER_PAPER_SCORE, so the true leak
    rate at t is NONPAPER_PAPER_SCORE.sf(t) again."""
    rng = np.random.default_rng(seed)
    goods = 1 - 0.3 - threat_share - unverified_share
    category = rng.choice(4, size=n, p=[0.3, goods, threat_share, unverified_share])
    no_threat = (category <= 1).astype(int)
    threats = np.zeros((n, len(THREATS)), dtype=int)
    threat_items = np.flatnonzero(category == 2)
    threats[threat_items, rng.integers(0, len(THREATS), size=threat_items.size)] = 1
    scores = np.empty((n, len(OUTPUTS_NO_THREAT)))
    scores[:, 0] = np.where(no_threat == 1, PAPER_PAPER_SCORE.rvs(size=n, random_state=rng),
                            NONPAPER_PAPER_SCORE.rvs(size=n, random_state=rng))
    for j in range(len(THREATS)):
        scores[:, 1 + j] = np.where(threats[:, j] == 1,
                                    THREAT_POSITIVE_SCORE.rvs(size=n, random_state=rng),
                                    THREAT_NEGATIVE_SCORE.rvs(size=n, random_state=rng))
    return NoThreatSample(scores, no_threat, (category == 0).astype(int), threats)
