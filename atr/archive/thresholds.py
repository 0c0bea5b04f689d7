"""Drift thresholds for a small archive's reference, set on the archive's own held-out items.

conf/monitor's thresholds are 2 x the largest value over windows of a 3 000-item
stationary simulator stream against a ~600-item reference. A drift signal's sampling
noise grows as the samples shrink: against a 17-item reference (the val split of a
172-item archive) they fire on the archive's own held-out items (measured on HUMS: the
image statistics' normed Wasserstein 0.77-0.83 for the calib and test splits, threshold
0.3). So before the monitor runs, each threshold is set on the archive the same way, on a
held-out split that is never replayed (`calib`: not trained on; the test split is the one
the line replays): `draws` bootstrap samples of it (n items of n, with replacement), each
cycled to a window of `window` items as the line cycles a split, each signal computed
against the reference exactly as `atr monitor` does (same methods, the stored embedding's
first `dims` dims); threshold = the largest value seen, never below conf/monitor's (the
simulator's floor). A window then fires only when it is
further from the reference than any resampled window of the archive's own held-out items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from atr.monitor.drift_scores import SIGNALS, DriftMethods, window_scores


def held_out_frame(package: Path, dataset: Path, split: str, dims: int) -> Any:
    """The split scored by the package as a monitor frame, embedding cut to `dims`."""
    from atr.data.manifest import read_dataset
    from atr.evaluation.scoring import add_decisions, score_dataset
    from atr.monitor.reference import monitor_frame
    from atr.package.onnx_scorer import OnnxScorer

    scorer = OnnxScorer(package)
    scored = add_decisions(score_dataset(scorer, read_dataset(dataset), [split]),
                           scorer.policy, scorer.outputs)
    frame = monitor_frame(scored, scorer.outputs)
    frame["embedding"] = [np.asarray(e[:dims], np.float32) for e in frame["embedding"]]
    return frame


def bootstrap_thresholds(reference: Any, held_out: Any, methods: DriftMethods, window: int,
                         floors: dict[str, float | None], draws: int = 200,
                         seed: int = 0) -> dict[str, Any]:
    """Per signal: max(floor, largest value over `draws` resampled held-out windows)."""
    if len(held_out) < 2:
        raise ValueError(f"drift threshold calibration needs >= 2 held-out items, got "
                         f"{len(held_out)}")
    rng = np.random.default_rng(seed)
    seen: dict[str, list[float]] = {s: [] for s in SIGNALS}
    n = len(held_out)
    for _ in range(draws):
        # a bootstrap sample of the held-out items (n of n, with replacement: another
        # sample of the archive as large as the one the line replays), then cycled to a
        # window in shuffled order, as the line replays a split
        sample = rng.integers(0, n, n)
        order = np.concatenate([rng.permutation(sample) for _ in range(-(-window // n))])
        picked = held_out.iloc[order[:window]].reset_index(drop=True)
        scores = window_scores(reference, picked, methods)
        for s in SIGNALS:
            seen[s].append(float(scores[s]))
    largest = {s: max(v) for s, v in seen.items()}
    thresholds = {s: None if floors.get(s) is None else max(float(floors[s]), largest[s])
                  for s in SIGNALS}
    return {"thresholds": thresholds, "bootstrap_max": largest,
            "bootstrap_p95": {s: float(np.percentile(v, 95)) for s, v in seen.items()},
            "floors": dict(floors), "draws": draws, "window": window,
            "held_out_items": len(held_out), "reference_items": len(reference)}


def archive_thresholds(package: Path, dataset: Path, split: str, monitor_cfg: Any,
                       window: int, dims: int, draws: int = 200) -> dict[str, Any]:
    """The calibration for the package's reference.parquet, with conf/monitor's methods."""
    from omegaconf import OmegaConf

    from atr.monitor.reference import read_reference

    methods = DriftMethods.from_cfg(OmegaConf.to_container(monitor_cfg.methods, resolve=True))
    floors = OmegaConf.to_container(monitor_cfg.rule.thresholds, resolve=True)
    reference = read_reference(package / "reference.parquet").frame
    held = held_out_frame(package, dataset, split, dims)
    return {"split": split, **bootstrap_thresholds(reference, held, methods, window, floors,
                                                    draws)}
