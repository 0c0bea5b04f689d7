"""The demo's progress display: which stage of the loop runs, and how long each took.

A closed loop of ten minutes with no output looks hung, and a slow machine needs to know
where its minutes go. Each stage prints one line when it starts and one when it ends,
`[k/N]` with the stage's own time and the loop's total, and the durations are kept for the
demo's summary (`summary.json` "stages"), so a timing regression names its stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# The loop's stages in order; `atr demo` walks them once each.
DEMO_STAGES = (
    "gold set",
    "v1: DVC pipeline (synthesize -> prepare -> train -> evaluate -> register) + gate",
    "scanner A on the line (v1)",
    "scanner B on the line + monitor (drift, frontline labels)",
    "v2: frontline batch + DVC pipeline + gate",
    "v2: hot swap",
    "scanner B on the line (v2)",
    "recalibration: scanner B's threshold from frontline labels + gate",
    "recalibrated version: hot swap + scanner B on the line",
    "report",
)


class Progress:
    def __init__(self, say: Callable[[str], None], stages: tuple[str, ...] = DEMO_STAGES):
        self._say = say
        self._stages = stages
        self._t0 = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def _elapsed_min(self) -> str:
        return f"{(time.perf_counter() - self._t0) / 60:.1f} min"

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if name not in self._stages:  # a typo would silently drop the stage from the table
            raise KeyError(f"unknown demo stage {name!r}; known: {list(self._stages)}")
        k, n = self._stages.index(name) + 1, len(self._stages)
        self._say(f"[{k}/{n}] {name} ...")
        start = time.perf_counter()
        yield
        took = time.perf_counter() - start
        self.seconds[name] = round(took, 1)
        self._say(f"[{k}/{n}] {name}: {took:.0f} s (total {self._elapsed_min()})")

    def skip(self, name: str, why: str) -> None:
        k, n = self._stages.index(name) + 1, len(self._stages)
        self.seconds[name] = 0.0
        self._say(f"[{k}/{n}] {name}: skipped ({why})")
