"""Live leak monitor under tightened audits: delay, false alarms and audit workload.

    .venv/bin/python benchmarks/leak_monitor_tightened.py     # ~2 min on 1 core

Serving audits 2 % of a scanner's would-be CLEARs, and `serve.audit_tightened_share` while
its leak CUSUM is above 0 (atr.monitor.tightened_audits). Per tightened share, two
thresholds: `budget`, the monitor's default (P(any false alarm within 20 000 cleared
items at the target) <= 5 %), and `letter`, the smallest with <= 1 expected false alarm
in 20 000 cleared items (issue 13's target read as written; monitor.leak.false_alarm set
to the P(any) it gives). Measured against issue 13's targets: at 2 x target, an alarm
within the audits of <= 5 000 cleared items; at the target, <= 1 false alarm in 20 000.
Figures from the exact chain over cleared items, checked by seeded simulations of the
switching rule; the workload is the average audit share at the target and at a tenth of
it. Writes benchmarks/results/leak_monitor_tightened.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402

from atr.monitor.leak_rate import CusumDesign, lattice, renewal  # noqa: E402
from atr.monitor.tightened_audits import (  # noqa: E402
    alarm_cdf_cleared,
    alarm_within,
    calibrated_cleared,
    mean_share,
    simulate_first_alarms,
)

REPO = Path(__file__).resolve().parent.parent
TARGET, RATIO, SHARE, BUDGET = 0.005, 2.0, 0.02, 0.05
FA_CLEARED, DETECT_CLEARED, LONG = 20_000, 5_000, 80_000
TIGHTENED = (0.0, 0.25, 0.5, 1.0)  # 0.0: no tightening, the fixed 2 %


def expected_false_alarms(design: CusumDesign, tight: float) -> float:
    return renewal(alarm_cdf_cleared(design, TARGET, FA_CLEARED, SHARE, tight))


def letter(tight: float) -> CusumDesign:
    """The smallest threshold with <= 1 expected false alarm in 20 000 cleared items."""
    lo, hi = 1, calibrated_cleared(TARGET, RATIO, BUDGET, FA_CLEARED, SHARE, tight).units
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = ((lo, mid) if expected_false_alarms(lattice(TARGET, RATIO, mid), tight) <= 1
                  else (mid + 1, hi))
    return lattice(TARGET, RATIO, lo)


def quantile(cdf: np.ndarray, q: float) -> int | None:
    i = int(np.searchsorted(cdf, q))
    return i + 1 if i < len(cdf) else None


def row(design: CusumDesign, tight: float, runs: int, rng: np.random.Generator) -> dict[str, Any]:
    cdf = alarm_cdf_cleared(design, RATIO * TARGET, LONG, SHARE, tight)
    fa = simulate_first_alarms(design, TARGET, FA_CLEARED, SHARE, tight, runs, rng) > 0
    delays = simulate_first_alarms(design, RATIO * TARGET, LONG // 2, SHARE, tight, runs, rng)
    late = np.where(delays > 0, delays, np.iinfo(np.int64).max)
    return {
        "tightened_share": tight, "units": design.units, "h": round(design.h, 4),
        "p_false_alarm_in_20000": round(alarm_within(design, TARGET, FA_CLEARED, SHARE, tight), 4),
        "expected_false_alarms_in_20000": round(expected_false_alarms(design, tight), 4),
        "delay_2x_cleared": {"median": quantile(cdf, 0.5), "p90": quantile(cdf, 0.9)},
        "alarm_within_5000_at_2x": round(float(cdf[DETECT_CLEARED - 1]), 4),
        "mean_audit_share": {"at_target": round(mean_share(design, TARGET, SHARE, tight), 4),
                             "at_tenth_of_target": round(mean_share(
                                 design, TARGET / 10, SHARE, tight), 4)},
        "simulated": {"runs": runs, "p_false_alarm_in_20000": round(float(fa.mean()), 4),
                      "delay_2x_median": float(np.median(late))},
        "meets_median": bool(expected_false_alarms(design, tight) <= 1.0
                             and (quantile(cdf, 0.5) or LONG) <= DETECT_CLEARED),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=2000, help="simulated streams per figure")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", type=Path,
                    default=REPO / "benchmarks/results/leak_monitor_tightened.json")
    args = ap.parse_args(argv)
    started, machine_start = time.perf_counter(), machine.describe()
    rng = np.random.default_rng(args.seed)
    rows: dict[str, list[dict[str, Any]]] = {"budget": [], "letter": []}
    for tight in TIGHTENED:
        budget = calibrated_cleared(TARGET, RATIO, BUDGET, FA_CLEARED, SHARE, tight)
        rows["budget"].append(row(budget, tight, args.runs, rng))
        rows["letter"].append(row(letter(tight), tight, args.runs, rng))
        print({k: (r[-1]["tightened_share"], r[-1]["units"], r[-1]["delay_2x_cleared"],
                   r[-1]["mean_audit_share"]["at_target"]) for k, r in rows.items()},
              flush=True)
    result = {"benchmark": "leak_monitor_tightened", "seed": args.seed,
              "settings": {"target": TARGET, "ratio": RATIO, "audit_share": SHARE,
                           "budget": BUDGET, "fa_cleared": FA_CLEARED,
                           "detect_cleared": DETECT_CLEARED},
              "rows": rows, "seconds": round(time.perf_counter() - started, 1),
              "machine": machine_start, "load_1min_end": machine.describe()["load_1min"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['seconds']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
