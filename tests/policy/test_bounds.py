import math

import numpy as np
import pytest

from atr.policy.bounds import (
    clopper_pearson,
    clopper_pearson_upper_many,
    min_trials_for_zero_events,
)


def test_zero_events_in_598_bounds_the_rate_at_half_a_percent():
    upper = clopper_pearson(0, 598, 0.95).upper
    assert upper == pytest.approx(1 - 0.05 ** (1 / 598))
    assert upper == pytest.approx(0.005, abs=1e-5) and upper <= 0.005
    assert clopper_pearson(0, 597, 0.95).upper > 0.005


def test_known_values():
    # Textbook one-sided 95% bounds: 1 in 10 -> upper 0.3942; 10 in 10 -> lower 0.05^(1/10).
    assert clopper_pearson(1, 10, 0.95).upper == pytest.approx(0.39416, abs=1e-4)
    assert clopper_pearson(10, 10, 0.95) == pytest.approx((0.05 ** 0.1, 1.0))
    assert clopper_pearson(0, 10, 0.95).lower == 0.0
    assert clopper_pearson(0, 0, 0.95) == (0.0, 1.0)


def test_vectorised_upper_matches_scalar():
    ks = np.array([0, 1, 5, 100])
    expected = [clopper_pearson(int(k), 100, 0.9).upper for k in ks]
    assert clopper_pearson_upper_many(ks, 100, 0.9) == pytest.approx(expected)


def test_required_calibration_size():
    assert min_trials_for_zero_events(0.005, 0.95) == 598
    assert min_trials_for_zero_events(0.01, 0.99) == math.ceil(math.log(0.01) / math.log(0.99))


@pytest.mark.parametrize("k,n,conf", [(-1, 5, 0.95), (6, 5, 0.95), (1, 5, 1.0)])
def test_rejects_nonsense(k, n, conf):
    with pytest.raises(ValueError):
        clopper_pearson(k, n, conf)
