"""How well does a trivial classifier separate a real set's classes without looking at it?

Public sets often collect threat and benign scans differently: another file format,
other image sizes and aspect ratios. A model can learn those instead of the threat,
and letterbox padding hands the aspect ratio to it. This module fits a logistic
regression on file format, log width, log height and log aspect ratio alone (k-fold),
and reports its AUROC beside each feature's own: a model's AUROC means little unless
it clearly beats this one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from atr.data.manifest import read_dataset


def trivial_auroc(formats: list[str], sizes: np.ndarray, labels: np.ndarray,
                  seed: int = 0) -> dict[str, Any]:
    """AUROC of format / size / aspect features, alone and together (5-fold logistic)."""
    w, h = sizes[:, 0].astype(float), sizes[:, 1].astype(float)
    kinds = sorted(set(formats))
    onehot = np.array([[f == k for k in kinds] for f in formats], dtype=float)
    named = {"log_width": np.log(w), "log_height": np.log(h), "log_aspect": np.log(w / h),
             "log_area": np.log(w * h)}
    single = {n: _separation(labels, v) for n, v in named.items()}
    single["format"] = _separation(labels, onehot @ np.arange(len(kinds))) if len(kinds) > 1 \
        else 0.5
    features = np.column_stack([onehot, *named.values()])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    proba = cross_val_predict(model, features, labels, cv=folds, method="predict_proba")[:, 1]
    return {"n": int(len(labels)), "n_threat": int(labels.sum()), "formats": kinds,
            "auroc_combined_5fold": float(roc_auc_score(labels, proba)),
            "auroc_single_feature": {k: round(v, 3) for k, v in single.items()}}


def _separation(labels: np.ndarray, values: np.ndarray) -> float:
    """AUROC of one feature in its better direction (0.5 = no information)."""
    auc = float(roc_auc_score(labels, values))
    return max(auc, 1.0 - auc)


def imported_pairs(dataset: Path) -> dict[str, Any]:
    """The representation the benchmark trains on: the imported low/high pairs."""
    ds = read_dataset(dataset)
    m = ds.manifest
    formats = [Path(json.loads(meta).get("original_name", "x.img")).suffix.lower()
               for meta in m["meta"]]
    sizes = m[["width", "height"]].to_numpy()
    return trivial_auroc(formats, sizes, m["knife"].to_numpy())


def colour_pictures(data: Path) -> dict[str, Any] | None:
    """HUMS's colour pictures (threat JPEGs vs benign TIFFs): not used, and here is why."""
    threat = sorted((data / "ThreatsRGB").glob("*.jpg"))
    benign = sorted(p for p in (data / "NotThreats").glob("*_colored.tif"))
    if not threat or not benign:
        return None
    files = threat + benign
    sizes = np.array([Image.open(p).size for p in files])
    labels = np.array([1] * len(threat) + [0] * len(benign))
    return trivial_auroc([p.suffix.lower() for p in files], sizes, labels)


def report(data: Path, dataset: Path) -> dict[str, Any]:
    return {"used_dual_energy_pairs": imported_pairs(dataset),
            "not_used_colour_pictures": colour_pictures(data),
            "representation": "dual_energy (raw low/high 16-bit TIFF pairs of both classes)"}
