"""Drift detection benchmark: false alarms on stationary streams, delay on drifted ones.

    .venv/bin/python benchmarks/drift_detection.py            # ~8 min cold, ~1 min cached
    .venv/bin/python benchmarks/drift_detection.py --prepare  # only package + streams

A small real model package (simulated dataset -> `atr train` -> `atr evaluate`) scores
simulated parcels like serving does; the monitor's own window scoring
(`atr.monitor.drift_scores`) and rule (`atr.monitor.drift_rule`) run over the streams.
Caches (package, .npz streams) live in runtime/bench-drift (git-ignored); they are rebuilt
when the model, augmentation or data config changes (runtime/bench-drift/model_key.txt),
the simulated data too when the simulator or a scanner/mix profile does.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

from drift_package import (  # noqa: E402  (benchmarks/ is the script's folder)
    DATASET,
    EVAL_OVERRIDES,
    IMAGE_SIZE,
    TRAIN_OVERRIDES,
    build_package,
    drop_stale_cache,
)

STATIONARY_CAL = ("stationary-cal", {"count": 3000, "seed": 101})   # sets thresholds
# Measures false alarms: 2 x 10 000 items (0 alarms in 20 000 bounds the rate at 1.5 per
# 10 000 items with 95 % confidence; 10 000 alone would only bound it at 3.0).
STATIONARY_EVAL = [(f"stationary-eval-{i}", {"count": 10000, "seed": 202 + i}) for i in range(2)]
DRIFTS = {
    "scanner_parcel_140kv": {"scanner": "parcel_140kv"},
    "ageing_5y": {"ageing_years": 5.0},
    "mix_concealment": {"mix": "concealment"},
    "mix_seasonal": {"mix": "seasonal"},
}
DRIFT_ITEMS, DRIFT_REPEATS = 1000, 2
EMBEDDING_CANDIDATES = {
    "model": {"method": "model"},
    "mmd": {"method": "mmd"},
    "distance": {"method": "distance", "dist": "euclidean"},
    "ratio": {"method": "ratio", "pca_components": 20},
}

EMBEDDING_CHOICE = (
    "mmd, kept with a known weakness. In embedding_method_comparison (share of fully "
    "drifted windows above the largest stationary value) MMD catches the ageing detector "
    "and the seasonal mix in every window, like distance and ratio, and the classifier "
    "('model') method misses half the seasonal windows. Since the simulator's air "
    "calibration (scanner B's channel gains no longer recolour every material) the new "
    "scanner moves the embedding little: MMD flags 1 window in 8, distance 15 in 16, "
    "ratio all; the image statistics catch that drift at 150 items, so the rule meets its "
    "target either way. MMD stays because its RBF bandwidth is the median pairwise "
    "distance: the score is scale-free and its threshold (2 x the stationary maximum) "
    "carries over to the next model, whereas the distance is in the embedding's own units "
    "and the ratio (a share of 20 PCA components) already reaches 0.6 on stationary "
    "windows, leaving no room for that recipe. Measured as the rule's signal instead "
    "(ratio, threshold 0.75, same streams): no false alarm in 20 000 items and delays of "
    "150 (scanner), 100 (ageing), 100 (seasonal), 300-550 (concealment), but the "
    "stationary windows reached 0.742, a margin of 0.008 under the threshold: not adopted."
)


def prepare(cache: Path, package: Path) -> dict[str, Path]:
    from atr.line.drift_drill import simulate_stream

    def one(name: str, **kw: object) -> Path:
        t = time.time()
        path = simulate_stream(package, cache / "streams" / f"{name}.npz",
                               image_size=IMAGE_SIZE, **kw)  # type: ignore[arg-type]
        logging.info("stream %s ready (%.0f s)", name, time.time() - t)
        return path

    paths = {name: one(name, **kw) for name, kw in (STATIONARY_CAL, *STATIONARY_EVAL)}
    for kind, kw in DRIFTS.items():
        for r in range(DRIFT_REPEATS):
            paths[f"{kind}-{r}"] = one(f"{kind}-{r}", count=DRIFT_ITEMS, seed=300 + r, **kw)
    return paths


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, float)
    return {"min": round(float(a.min()), 4), "median": round(float(np.median(a)), 4),
            "p95": round(float(np.quantile(a, 0.95)), 4), "max": round(float(a.max()), 4)}


def _poisson_upper(k: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a Poisson mean after observing k events."""
    from scipy.stats import chi2

    return float(chi2.ppf(confidence, 2 * (k + 1)) / 2)


def compare_embedding_methods(ref: pd.DataFrame, cal: pd.DataFrame, drifted: dict,
                              size: int, step: int) -> dict:
    """Each EmbeddingsDrift method on stationary windows (cal stream) and on windows fully
    inside each drift: detection power = share of drifted windows above the largest
    stationary value (a threshold with no false alarm on the calibration stream)."""
    from atr.monitor.drift_scores import DriftMethods, embedding_drift

    out = {}
    for name, params in EMBEDDING_CANDIDATES.items():
        params = dict(params)
        methods = DriftMethods(embedding=params.pop("method"), embedding_params=params)
        t = time.time()
        calls = 0

        def scores(frame: pd.DataFrame, every: int, m: DriftMethods = methods) -> list[float]:
            nonlocal calls
            ends = range(size, len(frame) + 1, every)
            calls += len(ends)
            return [embedding_drift(ref, frame.iloc[e - size : e], m) for e in ends]

        stationary = scores(cal, step)
        top = max(stationary)
        kinds = {}
        for kind, frames in drifted.items():
            values = [v for f in frames for v in scores(f, 2 * step)]
            kinds[kind] = {**_stats(values),
                           "power": round(float(np.mean(np.asarray(values) > top)), 3)}
        out[name] = {"params": EMBEDDING_CANDIDATES[name], "stationary": _stats(stationary),
                     "drifted": kinds,
                     "mean_power": round(float(np.mean([k["power"] for k in kinds.values()])), 3),
                     "ms_per_window": round(1000 * (time.time() - t) / calls, 1)}
        logging.info("method %s: %s", name, out[name]["mean_power"])
    return out


def measure(package: Path, paths: dict[str, Path]) -> dict:
    from omegaconf import OmegaConf

    from atr.config import compose
    from atr.line.drift_drill import alarms, onset_delay, stream_frame, window_series
    from atr.monitor.drift_rule import DriftRule
    from atr.monitor.drift_scores import SIGNALS, DriftMethods
    from atr.monitor.reference import read_reference

    mon = compose("monitor").monitor
    size, step = int(mon.window_size), int(mon.window_step)
    methods = DriftMethods.from_cfg(OmegaConf.to_container(mon.methods, resolve=True))
    rule = DriftRule.from_cfg(OmegaConf.to_container(mon.rule, resolve=True))
    ref = read_reference(package / "reference.parquet").frame
    frames = {name: stream_frame(path, package) for name, path in paths.items()}
    cal = frames[STATIONARY_CAL[0]]
    stationary = [frames[name] for name, _ in STATIONARY_EVAL]
    drifted = {k: [frames[f"{k}-{r}"] for r in range(DRIFT_REPEATS)] for k in DRIFTS}

    t = time.time()
    comparison = compare_embedding_methods(ref, cal, drifted, size, step)
    compare_s = time.time() - t
    t = time.time()
    cal_series = window_series(ref, cal, methods, size, step)
    eval_series, fired = [], []
    for frame in stationary:  # separate streams: no window straddles two of them
        series = window_series(ref, frame, methods, size, step)
        eval_series += series
        fired += alarms(rule, series)
    eval_items = sum(len(f) for f in stationary)
    delays, drifted_signals = {}, {}
    for kind, runs in drifted.items():
        delays[kind] = []
        for r, frame in enumerate(runs):
            # onset after one full window of stationary items (a slice of the cal stream
            # not used by the other repeats)
            pre = cal.iloc[r * size : (r + 1) * size]
            series = window_series(ref, pd.concat([pre, frame], ignore_index=True),
                                   methods, size, step)
            delays[kind].append(onset_delay(rule, series, onset=size))
            inside = [w for w in series if w["end"] >= 2 * size]  # only drifted items
            for signal in SIGNALS:
                drifted_signals.setdefault(kind, {}).setdefault(signal, []).extend(
                    w[signal] for w in inside)
    rule_s = time.time() - t
    per_signal = {s: {"stationary_cal": _stats([w[s] for w in cal_series]),
                      "stationary_eval": _stats([w[s] for w in eval_series]),
                      "threshold": rule.thresholds.get(s),
                      # the rule used: twice the largest calibration-stream value
                      "suggested_threshold": round(2 * max(w[s] for w in cal_series), 4),
                      "eval_windows_over_threshold": int(sum(rule.flags(w)[s]
                                                             for w in eval_series)),
                      "drifted_windows": {k: _stats(v[s]) for k, v in drifted_signals.items()}}
                  for s in SIGNALS}
    detected = {k: {"runs": v, "detected": sum(r["delay_items"] is not None for r in v),
                    "max_delay_items": max((r["delay_items"] for r in v
                                            if r["delay_items"] is not None), default=None)}
                for k, v in delays.items()}
    scanner = detected["scanner_parcel_140kv"]
    return {
        "summary": {
            "false_alarms_per_10k_items": round(len(fired) * 1e4 / eval_items, 3),
            "false_alarms_per_10k_upper95": round(_poisson_upper(len(fired)) * 1e4
                                                  / eval_items, 3),
            "delay_items": {k: [r["delay_items"] for r in v["runs"]]
                            for k, v in detected.items()},
            "scanner_change_target_met": scanner["detected"] == DRIFT_REPEATS
            and scanner["max_delay_items"] <= 500,
            "false_alarm_target_met": len(fired) * 1e4 / eval_items <= 1.0,
            # a drift is weak when a run went undetected or took more than 500 items
            "weak_for": [k for k, v in detected.items() if v["detected"] < DRIFT_REPEATS
                         or (v["max_delay_items"] or 0) > 500],
            "embedding_method": methods.embedding,
            "embedding_method_why": EMBEDDING_CHOICE,
        },
        "config": {"window_size": size, "window_step": step,
                   "methods": OmegaConf.to_container(mon.methods, resolve=True),
                   "rule": OmegaConf.to_container(mon.rule, resolve=True)},
        "embedding_method_comparison": comparison,
        "signals": per_signal,
        "stationary": {"items": eval_items, "windows": len(eval_series), "alarms": fired,
                       "false_alarms_per_10k_items": round(len(fired) * 1e4 / eval_items, 3),
                       "false_alarms_per_10k_upper95": round(_poisson_upper(len(fired)) * 1e4
                                                             / eval_items, 3)},
        "drifted": detected,
        "timing_s": {"method_comparison": round(compare_s, 1), "rule": round(rule_s, 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=REPO / "runtime" / "bench-drift")
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "drift_detection.json")
    parser.add_argument("--prepare", action="store_true", help="package + streams only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.time()
    drop_stale_cache(args.cache)
    package = build_package(args.cache)
    logging.info("package ready in %.0f s: %s", time.time() - t0, package)
    paths = prepare(args.cache, package)
    prepared_s = time.time() - t0
    if args.prepare:
        return
    result = measure(package, paths)
    result["setup"] = {"image_size": IMAGE_SIZE, "dataset": DATASET, "train": TRAIN_OVERRIDES,
                       "evaluate": EVAL_OVERRIDES, "stationary_cal_items": STATIONARY_CAL[1],
                       "stationary_eval_items": [kw for _, kw in STATIONARY_EVAL],
                       "drift_items": DRIFT_ITEMS, "drift_repeats": DRIFT_REPEATS,
                       "prepare_s": round(prepared_s, 1),
                       "total_s": round(time.time() - t0, 1)}
    result["machine"] = {"platform": platform.platform(), "python": platform.python_version(),
                         "cpu_count": os.cpu_count(), "load_avg_1m_at_end": os.getloadavg()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    logging.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
