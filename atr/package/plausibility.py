"""Is there evidence in this image at all? Cheap checks before a score may CLEAR an item.

A network scores whatever it is given: a blank white frame looks like paper to a
paper-only model (issue 13 §0). `assess` refuses frames no scan of a postal item looks
like: mostly air (`air`), objects spanning almost nothing (`coverage`), an odd shape
(`aspect`, `size`), pixel noise (`noise`), clipped pixels that carry no information
(`saturation`), objects without the colours this scanner gives materials (`colour`: a
text page or a photo on a pseudo-colour line; fitted, off by default), an embedding far
from the package's reference (`ood`). A *blank* frame
(empty, all black, uniform) means nothing usable was imaged: INSPECT, not REVIEW.
Serving runs it on every item: pure numpy, at most `_MAX_SIDE` samples a side. The
thresholds travel as the package's `plausibility.json` (atr.evaluation.plausibility_fit);
`default_spec()` holds generic, loose ones for packages without one.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

SPEC_VERSION = 1
# Evaluation order: the first failing check names the failure. Geometry first (about the
# upload itself), then emptiness and clipping, noise, and the embedding last: an ood
# distance only means something for a frame that is plausible as a picture.
CHECKS = ("aspect", "size", "air", "saturation", "coverage", "colour", "noise", "ood")
_MAX_SIDE = 128  # sampled positions a side: a flat cost whatever the scanner's resolution
_AIR = 235  # gray level from which a low-chroma pixel is empty belt (as image_stats)
_MIN_CHROMA = 24
_CLIP_DARK, _CLIP_BRIGHT = 2, 253  # within 2 levels of the end of the range: clipped
_OBJECT_DELTA = 24  # gray levels from the frame's dominant level that make an object pixel
_BLANK_SHARE = 0.999  # air or black over this share: nothing was imaged
_BLANK_LEVEL = 2.0  # contrast and noise both under this (gray levels): a uniform frame
_LARGE = 1e12  # stands for a non-finite ood distance, so records stay JSON-safe
_THRESHOLDS = {"aspect": ("aspect_min", "aspect_max"), "size": ("size_min", "size_max"),
               "air": ("air_max",), "saturation": ("saturation_max", "black_max"),
               "coverage": ("coverage_min",), "colour": ("colour_min",),
               "noise": ("noise_max",)}


@dataclass(frozen=True, eq=False)
class OodSpec:
    """Embedding distance to the reference: Mahalanobis in the top-k principal subspace
    (`basis` k x d, orthonormal rows; `variances`) plus the residual energy outside it over
    `residual_scale` (the reference's, per remaining dimension). `threshold` is exceeded
    by about `alpha` of in-distribution items (atr.evaluation.plausibility_fit.fit_ood)."""

    mean: np.ndarray
    basis: np.ndarray
    variances: np.ndarray
    residual_scale: float
    threshold: float
    alpha: float
    n_reference: int
    method: str = ""

    def __post_init__(self) -> None:
        for name in ("mean", "basis", "variances"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), np.float64))
        k, d = len(self.variances), self.dim
        if self.basis.shape != (k, d) or self.mean.shape != (d,) or (self.variances <= 0).any():
            raise ValueError(f"ood: basis {self.basis.shape}, variances {self.variances.shape} "
                             f"do not fit a {d}-d mean (variances > 0)")

    dim = property(lambda self: int(self.mean.shape[-1]))

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """Distances of N x d embeddings (about d for a typical reference item)."""
        x = np.atleast_2d(np.asarray(embeddings, np.float64)) - self.mean
        z = x @ self.basis.T
        residual = np.maximum((x * x).sum(axis=1) - (z * z).sum(axis=1), 0.0)
        scale = self.residual_scale if self.residual_scale > 0 else 1.0
        return (z * z / self.variances).sum(axis=1) + residual / scale

    def to_dict(self) -> dict[str, Any]:
        return {"mean": _round(self.mean), "basis": _round(self.basis),
                "variances": _round(self.variances), "residual_scale": _round(self.residual_scale),
                "threshold": float(self.threshold), "alpha": float(self.alpha),
                "n_reference": int(self.n_reference), "method": self.method}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OodSpec) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class PlausibilitySpec:
    """Thresholds of every check; `plausibility.json` in a package."""

    version: int = SPEC_VERSION
    air_max: float = 0.99  # share of empty-belt pixels
    coverage_min: float = 0.01  # share of the frame the objects span (rows x columns)
    aspect_min: float = 1 / 16  # width / height of the decoded image, before resizing
    aspect_max: float = 16.0
    size_min: int = 16  # shorter side, pixels
    size_max: int = 20_000  # longer side, pixels
    noise_max: float = 120.0  # robust spread of the 4-neighbour Laplacian, gray levels
    saturation_max: float = 0.98  # share of clipped pixels (pure white or pure black)
    black_max: float = 0.25  # share clipped black: opaque area hides what it holds
    # share of object pixels with a material colour; 0 (off) unless fitted on a reference
    colour_min: float = 0.0
    ood: OodSpec | None = None
    source: str = "default"  # default | fitted
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.version > SPEC_VERSION:
            raise ValueError(f"plausibility spec version {self.version} is newer than this "
                             f"code reads ({SPEC_VERSION})")
        if not (0 < self.aspect_min <= self.aspect_max and 0 < self.size_min <= self.size_max):
            raise ValueError("plausibility spec: aspect and size ranges must be 0 < min <= max")
        object.__setattr__(self, "notes", tuple(self.notes))

    def thresholds(self, check: str) -> dict[str, float]:
        """The thresholds `check` compares with (an Assessment records the failing one's)."""
        return {n: float(getattr(self, n)) for n in _THRESHOLDS[check]}

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "ood"}
        return {**out, "notes": list(self.notes),
                "ood": None if self.ood is None else self.ood.to_dict()}

    def to_json(self) -> str:
        # Thresholds one a line for a reader; the ood arrays (thousands of numbers) compact
        # on the last line.
        doc = self.to_dict()
        head = json.dumps({k: v for k, v in doc.items() if k != "ood"}, indent=2, sort_keys=True)
        return f'{head[:-2]},\n  "ood": {json.dumps(doc["ood"])}\n}}'

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PlausibilitySpec:
        raw = dict(raw)
        unknown = sorted(set(raw) - {f.name for f in fields(cls)})
        if unknown:  # a threshold we do not know could be one we should apply: refuse
            raise ValueError(f"plausibility spec: unknown field(s) {unknown}")
        ood = raw.pop("ood", None)
        return cls(**raw, ood=None if ood is None else OodSpec(**ood))

    @classmethod
    def from_json(cls, text: str) -> PlausibilitySpec:
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> PlausibilitySpec:
        return cls.from_json(Path(path).read_text())


def default_spec() -> PlausibilitySpec:
    """Generic thresholds any X-ray scan should meet; no ood (nothing to compare to)."""
    return PlausibilitySpec(notes=("generic defaults: the package has no fitted spec",))


@dataclass(frozen=True)
class Assessment:
    ok: bool
    check: str | None  # the first failing check (CHECKS order), None when ok
    blank: bool  # nothing usable imaged: INSPECT rather than REVIEW
    figures: dict[str, float] = field(default_factory=dict)
    failed: tuple[str, ...] = ()  # every failing check, in CHECKS order

    def to_record(self) -> dict[str, Any]:
        return {**asdict(self), "failed": list(self.failed)}


def image_figures(display_rgb: np.ndarray, raw_shape: tuple[int, int]) -> dict[str, float]:
    """The figures the checks read: the uint8 HxWx3 display image, the decoded image's
    (height, width) before any resize. The fitting code measures the reference with it."""
    if display_rgb.dtype != np.uint8 or display_rgb.ndim != 3 or display_rgb.shape[2] != 3:
        raise ValueError(f"expected uint8 HxWx3, got {display_rgb.dtype} {display_rgb.shape}")
    h, w = (int(v) for v in raw_shape)
    step = max(1, -(-max(display_rgb.shape[:2]) // _MAX_SIDE))
    view = display_rgb[::step, ::step]
    r, g, b = view[..., 0], view[..., 1], view[..., 2]
    # Channel-wise: a reduction over the last axis of a strided view costs ten times more.
    lo, hi = np.minimum(np.minimum(r, g), b), np.maximum(np.maximum(r, g), b)
    chroma = hi - lo
    gray = 0.299 * r.astype(np.float32) + 0.587 * g + 0.114 * b
    n = gray.size
    dominant = int(np.argmax(np.bincount(gray.astype(np.uint8).ravel(), minlength=256)))
    obj = (np.abs(gray - dominant) > _OBJECT_DELTA) | (chroma >= _MIN_CHROMA)
    white = np.count_nonzero(lo >= _CLIP_BRIGHT) / n
    black = np.count_nonzero(hi <= _CLIP_DARK) / n
    return {
        "height": float(h), "width": float(w), "aspect": w / max(h, 1),
        "air": np.count_nonzero((gray >= _AIR) & (chroma < _MIN_CHROMA)) / n,
        "coverage": _extent(obj, axis=1) * _extent(obj, axis=0),
        "noise": _noise(display_rgb, step),
        "saturation": white + black, "white_clipped": white, "black_clipped": black,
        "contrast": float(gray.std()),
        "colour": np.count_nonzero(obj & (chroma >= _MIN_CHROMA)) / max(np.count_nonzero(obj), 1),
    }


def assess(spec: PlausibilitySpec, display_rgb: np.ndarray, raw_shape: tuple[int, int],
           embedding: np.ndarray | None = None) -> Assessment:
    """Every check of `spec` on one item; `embedding` (the model's, 1-d) feeds `ood`
    and is skipped when None or when the spec has no ood model."""
    return assess_figures(spec, image_figures(display_rgb, raw_shape), embedding)


def assess_figures(spec: PlausibilitySpec, figures: dict[str, float],
                   embedding: np.ndarray | None = None) -> Assessment:
    """`assess` on figures already measured (image_figures): lets the fitting code judge a
    reference measured once against any spec."""
    f = dict(figures)
    side_min, side_max = min(f["height"], f["width"]), max(f["height"], f["width"])
    failing = {
        "aspect": not spec.aspect_min <= f["aspect"] <= spec.aspect_max,
        "size": side_min < spec.size_min or side_max > spec.size_max,
        "air": f["air"] > spec.air_max,
        "saturation": f["saturation"] > spec.saturation_max or f["black_clipped"] > spec.black_max,
        "coverage": f["coverage"] < spec.coverage_min,
        "colour": f.get("colour", 1.0) < spec.colour_min,
        "noise": f["noise"] > spec.noise_max,
    }
    if spec.ood is not None and embedding is not None:
        emb = np.asarray(embedding, np.float64).ravel()
        if emb.shape[0] != spec.ood.dim:
            raise ValueError(f"embedding has {emb.shape[0]} values; the ood model {spec.ood.dim}")
        distance = float(spec.ood.score(emb)[0]) if np.isfinite(emb).all() else math.inf
        f["ood"] = distance if math.isfinite(distance) else _LARGE
        failing["ood"] = not distance <= spec.ood.threshold
    blank = bool(f["air"] >= _BLANK_SHARE or f["black_clipped"] >= _BLANK_SHARE
                 or (f["contrast"] < _BLANK_LEVEL and f["noise"] < _BLANK_LEVEL))
    failed = tuple(c for c in CHECKS if failing.get(c))
    if blank and not failed:
        failed = ("coverage",)  # a uniform frame spans no object, whatever the thresholds
    figures = {k: float(v) for k, v in f.items()}
    if failed and failed[0] == "ood":
        figures["ood_threshold"] = float(spec.ood.threshold)  # type: ignore[union-attr]
    elif failed:
        figures.update(spec.thresholds(failed[0]))
    return Assessment(ok=not failed, check=failed[0] if failed else None, blank=blank,
                      figures=figures, failed=failed)


def _round(a: Any) -> Any:
    """7 significant digits: far below the spread of any distance, half the bytes."""
    return np.vectorize(lambda v: float(f"{v:.7g}"), otypes=[float])(a).tolist()


def _level(rgb: np.ndarray) -> np.ndarray:
    """Channel sum (int32): linear like luma, a third of the cost of a float conversion."""
    return rgb[..., 0].astype(np.int32) + rgb[..., 1] + rgb[..., 2]


def _extent(obj: np.ndarray, axis: int) -> float:
    """Share of rows (axis=1) or columns (axis=0) with object pixels: at least two and 2 %
    of the line, so isolated noisy pixels span nothing."""
    counts = np.count_nonzero(obj, axis=axis)
    need = max(2.0, 0.02 * obj.shape[axis])
    return float(np.count_nonzero(counts >= need) / max(counts.size, 1))


def _noise(rgb: np.ndarray, step: int) -> float:
    """1.4826 x median |L|, L the 4-neighbour Laplacian of gray at the sampled positions
    with full-resolution neighbours (a sampled view alone aliases pixel-scale noise or
    stripes into a smooth picture). |L| about zero, not a MAD about L's median: stripes
    sampled in step with their period give a constant L."""
    h, w = rgb.shape[:2]
    if h < 3 or w < 3:
        return 0.0
    rows, cols = slice(1, h - 1, step), slice(1, w - 1, step)
    up, down = slice(0, h - 2, step), slice(2, h, step)
    left, right = slice(0, w - 2, step), slice(2, w, step)
    lap = np.abs(4 * _level(rgb[rows, cols]) - _level(rgb[up, cols]) - _level(rgb[down, cols])
                 - _level(rgb[rows, left]) - _level(rgb[rows, right])).ravel()
    mid = lap.size // 2  # partition: 3x cheaper than median; / 3: channel sum -> gray
    return float(1.4826 / 3 * np.partition(lap, mid)[mid])
