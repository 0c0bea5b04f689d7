"""What a small classifier sees of a scan, and how well it tells two sets apart.

Used by benchmarks/domain_gap.py (simulated vs real) and its test (simulated vs
simulated). Everything starts from the model's own input (PreprocessSpec.decode, then
prepare_batch), so a difference found here is one the model would see too.

Features per item, in named groups (a group's AUROC says *why* the sets differ):
  pixels       the 3xSxS input box-averaged to 3x32x32 (layout and material at a glance)
  geometry     where the scan lies in the canvas: its own area, the object's area and box
  material     per-channel 10/50/90th percentiles and mean over object pixels, dense share
  clutter      gradient strength and edge density inside the object, fine-scale contrast
  background   the scan's own air (padding excluded): its level and its noise
  content      material + clutter + background: all but the frame's shape and size
Channels are un-normalised first (attenuation for dual_energy, RGB in 0..1 for
pseudo_colour), so the thresholds below are physical, not per model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from atr.package.preprocess import PreprocessSpec

GRID = 32  # pixels group: 3 x 32 x 32 = 3 072 values
GROUPS = ("geometry", "material", "clutter", "background")
# Everything but the scan's frame: what would remain if both sets had scans of one shape.
CONTENT = ("material", "clutter", "background")
# Object vs air: 5 % attenuation in the low channel (dual_energy); any channel below 0.9
# of white (pseudo_colour: a pale bag is yellow, i.e. blue < 0.9, on a white belt).
OBJECT_ATTENUATION, OBJECT_RGB = 0.05, 0.9
DENSE_ATTENUATION, DENSE_RGB = 1.5, 0.3  # ~metal: T < 22 % (low) / dark in every channel
EDGE = 0.1  # gradient per model pixel (attenuation or RGB units) counted as an edge
LOGREG = "logistic regression (L2, C=0.05, standardised) on pixels + all statistics"
TREES = "gradient-boosted trees (sklearn HistGradientBoosting, depth 3, 100 rounds) on statistics"


@dataclass
class Features:
    pixels: np.ndarray  # N x 3*GRID*GRID
    stats: np.ndarray  # N x len(names)
    names: list[str]
    groups: list[str]  # per stats column, one of GROUPS

    def __len__(self) -> int:
        return len(self.stats)


def extract(spec: PreprocessSpec, paths: list, chunk: int = 16) -> Features:
    """Decode + prepare each scan as the model would, then summarise it (chunked: memory)."""
    if spec.input_size % GRID:
        raise ValueError(f"input_size {spec.input_size} must be a multiple of {GRID}")
    pixels: list[np.ndarray] = []
    stats: list[list[float]] = []
    names: list[str] = []
    groups: list[str] = []
    for start in range(0, len(paths), chunk):
        decoded = [spec.decode(p) for p in paths[start:start + chunk]]
        batch = spec.prepare_batch(decoded)
        n, c, s, _ = batch.shape
        k = s // GRID
        pixels.append(batch.reshape(n, c, GRID, k, GRID, k).mean(axis=(3, 5)).reshape(n, -1))
        units = batch * np.asarray(spec.std, np.float32)[:, None, None] + np.asarray(
            spec.mean, np.float32)[:, None, None]
        for img, raw in zip(units, decoded, strict=True):
            new_w, new_h, px, py = spec.geometry(*raw.shape[:2])
            names, groups, values = _statistics(spec, img, (px, py, new_w, new_h))
            stats.append(values)
    if not stats:
        raise ValueError("no scans to extract features from")
    return Features(np.vstack(pixels), np.asarray(stats, np.float64), names, groups)


def _statistics(spec: PreprocessSpec, img: np.ndarray,
                rect: tuple[int, int, int, int]) -> tuple[list[str], list[str], list[float]]:
    """Named statistics of one un-normalised 3xSxS input whose scan lies in `rect`."""
    c, s, _ = img.shape
    px, py, w, h = rect
    inside = np.zeros((s, s), bool)
    inside[py:py + h, px:px + w] = True
    if spec.dual_energy:
        obj = img[0] > OBJECT_ATTENUATION
        dense = img[0] > DENSE_ATTENUATION
        luma = img[0]  # attenuation: larger = more matter
    else:
        obj = img.min(axis=0) < OBJECT_RGB
        dense = img.max(axis=0) < DENSE_RGB
        luma = 1.0 - img.mean(axis=0)  # darkness: larger = more matter
    obj &= inside
    air = inside & ~obj
    out: list[tuple[str, str, float]] = []
    ys, xs = np.nonzero(obj)
    box = ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1) / s**2) if len(ys) else 0.0
    out += [("geometry", "scan_area", inside.mean()), ("geometry", "object_area", obj.mean()),
            ("geometry", "object_share_of_scan", obj.sum() / max(inside.sum(), 1)),
            ("geometry", "object_box_area", box),
            ("geometry", "scan_aspect", min(w, h) / max(w, h))]
    for ch in range(c):
        vals = img[ch][obj]
        q = np.percentile(vals, [10, 50, 90]) if len(vals) else np.zeros(3)
        out += [("material", f"ch{ch}_p{p}", v) for p, v in zip((10, 50, 90), q, strict=True)]
        out.append(("material", f"ch{ch}_mean", vals.mean() if len(vals) else 0.0))
    out.append(("material", "dense_share_of_object", (dense & obj).sum() / max(obj.sum(), 1)))
    gy, gx = np.gradient(luma)
    grad = np.hypot(gx, gy)
    fine = luma - uniform_filter(luma, size=3)  # high-pass: texture and noise
    out += [("clutter", "gradient_mean", _mean(grad, obj)),
            ("clutter", "edge_density", _mean(grad > EDGE, obj)),
            ("clutter", "fine_contrast", _std(fine, obj)),
            ("background", "air_share_of_scan", air.sum() / max(inside.sum(), 1)),
            ("background", "air_level", _mean(luma, air)),
            ("background", "air_noise", _std(fine, air))]
    return [n for _, n, _ in out], [g for g, _, _ in out], [float(v) for _, _, v in out]


def _mean(x: np.ndarray, mask: np.ndarray) -> float:
    return float(x[mask].mean()) if mask.any() else 0.0


def _std(x: np.ndarray, mask: np.ndarray) -> float:
    return float(x[mask].std()) if mask.sum() > 1 else 0.0


def logreg() -> object:
    # Strong L2: 3 000+ features on a few hundred items; standardised so C means the same
    # for attenuation and RGB inputs.
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=3000))


def trees(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_depth=3, max_iter=100, learning_rate=0.1,
                                          random_state=seed)


def cv_auroc(make: object, x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int,
             seed: int) -> list[float]:
    """Out-of-fold AUROC per fold; folds by group (near-duplicate scans stay together)."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    aurocs = []
    for train, test in splitter.split(x, y, groups):
        model = make()  # type: ignore[operator]
        model.fit(x[train], y[train])
        aurocs.append(round(float(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1])), 4))
    return aurocs


def separability(a: Features, b: Features, *, folds: int = 5, seed: int = 0,
                 groups_a: np.ndarray | None = None, top: int = 8) -> dict:
    """How well a small classifier tells set `a` (label 1) from set `b` (label 0).

    AUROC 0.5: indistinguishable; 1.0: always told apart. `groups_a` keeps `a`'s
    near-duplicates in one fold (b's items are independent draws)."""
    if len(a) < folds or len(b) < folds:
        raise ValueError(f"need >= {folds} items per set for {folds}-fold CV, "
                         f"got {len(a)} and {len(b)}")
    if a.names != b.names:
        raise ValueError("the two sets have different statistics (different representations?)")
    # One BLAS/OpenMP thread: these fits are small, and thread pools fighting over two
    # shared cores made them 10-40x slower (measured: 8.9 s -> 0.24 s for 5 logreg fits).
    with threadpool_limits(1):
        return _separability(a, b, folds, seed, groups_a, top)


def _separability(a: Features, b: Features, folds: int, seed: int,
                  groups_a: np.ndarray | None, top: int) -> dict:
    y = np.r_[np.ones(len(a), int), np.zeros(len(b), int)]
    ga = np.arange(len(a)) if groups_a is None else np.unique(groups_a, return_inverse=True)[1]
    groups = np.r_[ga, len(a) + np.arange(len(b))]
    stats = np.vstack([a.stats, b.stats])
    full = np.hstack([np.vstack([a.pixels, b.pixels]), stats])
    main = cv_auroc(logreg, full, y, groups, folds, seed)
    boosted = cv_auroc(lambda: trees(seed), stats, y, groups, folds, seed)
    by_group = {"pixels": _summary(cv_auroc(logreg, full[:, :a.pixels.shape[1]], y, groups,
                                            folds, seed))}
    for g, members in [*((g, (g,)) for g in GROUPS), ("content", CONTENT)]:
        cols = [i for i, gi in enumerate(a.groups) if gi in members]
        by_group[g] = _summary(cv_auroc(lambda: trees(seed), stats[:, cols], y, groups,
                                        folds, seed))
    single = []
    for i, name in enumerate(a.names):  # each statistic alone, no classifier: the "why"
        auc = float(roc_auc_score(y, stats[:, i]))
        single.append({"feature": name, "group": a.groups[i], "auroc": round(max(auc, 1 - auc), 4),
                       "higher_in": "first" if auc >= 0.5 else "second",
                       "median_first": round(float(np.median(a.stats[:, i])), 4),
                       "median_second": round(float(np.median(b.stats[:, i])), 4)})
    single.sort(key=lambda r: -r["auroc"])
    return {"auroc_mean": _summary(main)["mean"], "auroc_folds": main, "classifier": LOGREG,
            "trees_on_statistics": {**_summary(boosted), "classifier": TREES},
            "by_feature_group": by_group,
            # graded where the AUROCs saturate: how many aspects differ on their own
            "statistics_alone_over_0.9": sum(r["auroc"] >= 0.9 for r in single),
            "statistics": len(single), "top_single_features": single[:top],
            "n_first": len(a), "n_second": len(b), "folds": folds}


def _summary(aurocs: list[float]) -> dict:
    return {"mean": round(float(np.mean(aurocs)), 4), "folds": aurocs}
