"""Fit a package's plausibility spec on the reference (val) split, and measure its cost.

Image checks: the generic defaults (atr.package.plausibility.default_spec) are the
envelope any X-ray scan should sit in; the reference can only *widen* a threshold --
to its extreme quantile plus a margin -- never narrow it. Narrowing on a few hundred
reference items would flag the genuine items of tails it did not happen to hold, and
the check fitted tightly to the reference is the ood distance. Widening stops at hard
limits (blank-frame shares, pixel noise), so a reference holding garbage cannot switch
a check off; reference items that fail the defaults are counted in the spec's notes.
Sizes and aspect come from the reference too: a scanner profile (conf/scanner) states
the pixel pitch but not the frame size, which is a data option (synth.image_size).

Cost: the share of genuine low-risk test items, and of the policy's test CLEARs, the
spec would send away from CLEAR (metrics.json `plausibility`).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atr.package.manifest import atomic_write_text
from atr.package.plausibility import (
    Assessment,
    OodSpec,
    PlausibilitySpec,
    assess_figures,
    default_spec,
    image_figures,
)

log = logging.getLogger(__name__)

OOD_ALPHA = 0.001  # share of in-distribution items the ood threshold may send away
FOLDS = 5
MIN_OOD_ITEMS = 50  # fewer reference embeddings: no ood model (the notes say so)
MAX_RANK = 32  # principal components kept; the rest of the embedding is the residual
VARIANCE_SHARE = 0.95
EXTREME = 0.001  # reference quantiles the image thresholds start from (either end)
# How far past the reference's extreme a threshold moves: shares halfway to the end of
# their range but at most SHARE_STEP, scale figures by a factor.
SHARE_MARGIN, SHARE_STEP, SCALE_MARGIN = 0.5, 0.05, 1.5
# Hard limits no reference may widen past: shares over these are blank frames, and a
# Laplacian spread over 200 gray levels is what uniform random pixels give.
SHARE_LIMIT, NOISE_LIMIT = 0.998, 200.0
WARN_RATE = 0.01  # genuine low-risk items flagged over this share: the stage warns


def reference_figures(images: Iterable[tuple[np.ndarray, tuple[int, int]]]
                      ) -> list[dict[str, float]]:
    """image_figures of each (display RGB, raw shape): the same measure serving takes."""
    return [image_figures(rgb, shape) for rgb, shape in images]


def fit_image_thresholds(figures: Sequence[Mapping[str, float]],
                         base: PlausibilitySpec | None = None) -> dict[str, Any]:
    """Thresholds widened to the reference's figures (module docstring): spec fields."""
    base = base or default_spec()
    if not figures:
        return {}
    col = {k: np.array([f[k] for f in figures], np.float64) for k in figures[0]}
    sides = np.minimum(col["height"], col["width"]), np.maximum(col["height"], col["width"])

    def hi(x: np.ndarray) -> float:
        return float(np.quantile(x, 1 - EXTREME))

    def lo(x: np.ndarray) -> float:
        return float(np.quantile(x, EXTREME))

    def share(name: str, default: float) -> float:
        q = hi(col[name])
        return min(max(default, q + min(SHARE_MARGIN * (1 - q), SHARE_STEP)), SHARE_LIMIT)

    return {
        "air_max": share("air", base.air_max),
        "saturation_max": share("saturation", base.saturation_max),
        "black_max": share("black_clipped", base.black_max),
        "coverage_min": min(base.coverage_min, lo(col["coverage"]) / 2),
        # the one image check fitted tightly, like ood: the line's own colour convention
        "colour_min": max(base.colour_min, lo(col["colour"]) / 2) if "colour" in col
        else base.colour_min,
        "noise_max": min(max(base.noise_max, hi(col["noise"]) * SCALE_MARGIN), NOISE_LIMIT),
        "aspect_min": min(base.aspect_min, lo(col["aspect"]) / SCALE_MARGIN),
        "aspect_max": max(base.aspect_max, hi(col["aspect"]) * SCALE_MARGIN),
        "size_min": max(1, min(base.size_min, math.floor(lo(sides[0]) / 2))),
        "size_max": max(base.size_max, math.ceil(hi(sides[1]) * 2)),
    }


def fit_ood(embeddings: np.ndarray, alpha: float = OOD_ALPHA, folds: int = FOLDS,
            seed: int = 0) -> OodSpec | None:
    """The ood model of the reference embeddings (N x d), or None under MIN_OOD_ITEMS.

    Threshold by *cross-fitting*: each item is scored by a model fitted on the other
    folds, and the threshold is the (1 - alpha) quantile of those held-out distances.
    In-sample distances read low (the subspace and variances were fitted to those very
    items, most of all when N is not much larger than d), so a threshold set on them
    would flag too many fresh genuine items; a fit/threshold split would leave too few
    items for a 0.1 % tail. Cross-fitting uses every item for the threshold and none is
    scored by a fit that saw it. The model stored is a fold model (fitted on all folds
    but the first): the pooled held-out distances are what such a model gives unseen
    items. A model refitted on all N fits fresh items better than the threshold assumes
    (500 ReLU embeddings of 512 values: ~0.02 % of fresh items exceeded the refitted
    model's threshold, 0.05-0.1 % the fold model's).
    """
    x = np.asarray(embeddings, np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    if len(x) < MIN_OOD_ITEMS:
        return None
    fold = np.random.default_rng(seed).permutation(len(x)) % folds
    held_out = np.empty(len(x))
    models = [_subspace(x[fold != f]) for f in range(folds)]
    for f, model in enumerate(models):
        held_out[fold == f] = model.score(x[fold == f])
    threshold, method = tail_quantile(held_out, alpha)
    return replace(models[0], threshold=threshold, alpha=alpha, n_reference=len(x),
                   method=f"{folds}-fold cross-fitted distances, {method}")


def tail_quantile(scores: np.ndarray, alpha: float) -> tuple[float, str]:
    """The (1 - alpha) quantile of `scores` and how it was taken.

    Empirical where at least 10 scores lie beyond it; else peaks over a threshold: the
    excesses over a high order statistic u are taken as exponential (squared distances
    have gamma-like tails, which an exponential fitted at u bounds from above), and the
    quantile extrapolated from the share over u down to alpha.
    """
    s = np.sort(np.asarray(scores, np.float64))
    n = len(s)
    if n * alpha >= 10:
        return float(np.quantile(s, 1 - alpha)), "empirical quantile"
    m = min(max(20, n // 50), n // 2)  # exceedances the tail is fitted on
    u = s[n - m - 1]
    beta = max(float(np.mean(s[n - m:] - u)), 1e-12)
    q = u + beta * math.log((m / n) / alpha)
    return float(q), f"exponential tail over the top {m} of {n}"


def _subspace(x: np.ndarray) -> OodSpec:
    n, d = x.shape
    mean = x.mean(axis=0)
    _, sing, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = sing**2 / max(n - 1, 1)
    total = float(var.sum()) or 1.0
    reach = int(np.searchsorted(np.cumsum(var) / total, VARIANCE_SHARE) + 1)
    k = max(1, min(reach, MAX_RANK, d, max(n // 5, 1), len(var)))
    # Floors: a component the reference never varies along still gets a finite scale.
    floor = 1e-6 * total / d
    residual = max((total - float(var[:k].sum())) / (d - k), floor) if d > k else 0.0
    return OodSpec(mean=mean, basis=vt[:k], variances=np.maximum(var[:k], floor),
                   residual_scale=residual, threshold=math.inf, alpha=OOD_ALPHA, n_reference=n)


def fit_spec(figures: Sequence[Mapping[str, float]], embeddings: np.ndarray | None = None,
             alpha: float = OOD_ALPHA, seed: int = 0) -> PlausibilitySpec:
    """The package's spec from the reference's image figures and model embeddings."""
    base = default_spec()
    notes = [f"fitted on {len(figures)} reference items"]
    failing = Counter(a.check for a in (assess_figures(base, f) for f in figures) if not a.ok)
    if failing:
        notes.append(f"reference items failing the generic defaults: {dict(failing)}")
    ood = None if embeddings is None else fit_ood(embeddings, alpha, seed=seed)
    if embeddings is not None and ood is None:
        notes.append(f"no ood model: under {MIN_OOD_ITEMS} reference embeddings")
    return replace(base, **fit_image_thresholds(figures, base), ood=ood, source="fitted",
                   notes=tuple(notes))


def frame_figures(scorer: Any, dataset: Any, frame: pd.DataFrame) -> list[dict[str, float]]:
    """image_figures of every row of a scored frame, decoded as the package decodes them:
    the file its representation reads (`raw` for dual energy, which the frame lacks: looked
    up in the dataset's manifest by item_id). The scoring pass keeps only image_stats, so
    the files are read once more."""
    spec, column = scorer.preprocess, scorer.preprocess.input_column
    files = dataset.manifest.set_index("item_id")[column].loc[frame["item_id"]]
    out = []
    for rel in files:
        decoded = spec.decode(Path(dataset.root) / rel)
        out.append(image_figures(spec.display(decoded), decoded.shape[:2]))
    return out


def frame_embeddings(frame: pd.DataFrame) -> np.ndarray:
    return np.stack([np.asarray(e, np.float64) for e in frame["embedding"]])


def write_package_spec(scorer: Any, dataset: Any, reference: pd.DataFrame,
                       path: Path) -> PlausibilitySpec:
    """Fit the spec on the package's scored reference frame (val: reference.parquet), write
    it to `path` and return it as serving will read it (arrays rounded in the file)."""
    spec = fit_spec(frame_figures(scorer, dataset, reference), frame_embeddings(reference))
    atomic_write_text(path, spec.to_json() + "\n")
    return PlausibilitySpec.load(path)


def measure_cost(scorer: Any, dataset: Any, spec: PlausibilitySpec, frame: pd.DataFrame
                 ) -> dict[str, Any]:
    """plausibility_cost on a scored, decided split, on the package's low-risk truth."""
    cost = plausibility_cost(spec, frame_figures(scorer, dataset, frame), frame, scorer.outputs[0])
    if (cost["low_risk_flagged_rate"] or 0) > WARN_RATE:
        log.warning("plausibility checks flag %d of %d genuine %s items (by check: %s)",
                    cost["low_risk_flagged"], cost["low_risk_n"], cost["low_risk"],
                    cost["by_check"])
    return cost


def plausibility_cost(spec: PlausibilitySpec, figures: Sequence[Mapping[str, float]],
                      frame: pd.DataFrame, low_risk: str) -> dict[str, Any]:
    """What the spec costs on a scored, decided frame: genuine low-risk items (truth
    column `low_risk` = 1) and policy CLEARs it would send away, and why."""
    assessments = assessments_of(spec, figures, frame_embeddings(frame))
    failed = np.array([not a.ok for a in assessments])
    genuine = frame[low_risk].to_numpy() == 1
    clears = frame["decision"].to_numpy() == "CLEAR"

    def share(k: int, n: int) -> float | None:
        return k / n if n else None

    k_low, k_clear = int((failed & genuine).sum()), int((failed & clears).sum())
    return {
        "low_risk": low_risk,
        "n": len(assessments), "flagged": int(failed.sum()),
        "blank": sum(a.blank for a in assessments),
        "low_risk_n": int(genuine.sum()), "low_risk_flagged": k_low,
        "low_risk_flagged_rate": share(k_low, int(genuine.sum())),
        "clears_n": int(clears.sum()), "clears_blocked": k_clear,
        "clears_blocked_rate": share(k_clear, int(clears.sum())),
        "by_check": dict(Counter(a.check for a in assessments if a.check is not None)),
        "spec": {"source": spec.source, "ood": spec.ood is not None,
                 "ood_threshold": None if spec.ood is None else spec.ood.threshold,
                 "notes": list(spec.notes)},
    }


def assessments_of(spec: PlausibilitySpec, figures: Sequence[Mapping[str, float]],
                   embeddings: np.ndarray | None = None) -> list[Assessment]:
    """assess_figures over a measured set (embeddings row-aligned, or None)."""
    rows = [None] * len(figures) if embeddings is None else list(embeddings)
    return [assess_figures(spec, dict(f), e) for f, e in zip(figures, rows, strict=True)]
