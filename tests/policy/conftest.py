from collections.abc import Callable

import pytest
from policy_synth import Sample, make_sample


@pytest.fixture
def synth() -> Callable[..., Sample]:
    return make_sample
