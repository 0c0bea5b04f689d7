"""Recalibration from frontline labels: a per-scanner clear threshold for the champion,
certified on that scanner's own items, without retraining (docs/recalibration.md).

The claim. For one scanner and a window of its items decided by the champion: with
probability >= confidence, the leak rate the certified threshold t would have had on those
items (items not low risk that CLEAR releases / items not low risk) is <= target.

The bound, at a candidate threshold t (never below the threshold the champion applies to
the scanner, itself never below the global one):

  M_t   would-be CLEARs (the policy's own decision, kept by the line's plausibility rule)
        with low-risk score >= t: exactly what CLEAR would release at t;
  n_t   of them in the label sample, k_t of those not low risk;
  q_up  upper bound on the not-low-risk share of the M_t, from k_t of n_t;
  D     items of the window confirmed not low risk by any feedback (<= the true count);
  L_up(t) = q_up * M_t / D  >=  true leaks / D  >=  true leaks / true non-low-risk items.

Why only the label sample counts: the labels of released items arrive because something
was found (complaints, seizures), and those of INSPECT items describe what the model
flagged, not what it clears. The sample holds the would-be CLEARs whose label did not
depend on their content: audits (drawn by a keyed hash, atr.policy.audit) and safe-mode
REVIEWs an analyst labelled. Given its size, it must be a simple random sample of the
would-be CLEARs of its stratum (items under the same labelling design: normal vs safe mode):
true of audits by construction; for analyst labels it is an assumption (keying independent
of the item's content and score). Audits still pending count as not low risk (worst case:
a late outcome cannot hide a leak). Strata are bounded separately, at delta / strata each.

Why the search keeps the bound: the grid depends on the scores only, never on the labels;
the true leak rate grows as t falls; fixed-sequence testing from strict to lenient stops at
the first failure, so certifying a t whose true rate exceeds the target requires passing
the first such grid point, where every stratum's bound covers its count except with
probability <= delta in all: no multiplicity correction (as atr.policy.calibration).
q_up is Clopper-Pearson by default (binomial: for a sample drawn without replacement it
is conservative at the shares that matter, below 1/2, checked exactly in the tests, but not
a theorem everywhere) or, with bound="hypergeometric", the exact finite-population bound,
tighter when a large share is labelled. Either is capped at M_t - (n_t - k_t): labelled
low-risk items do not leak. Generalising from the window to future items assumes the
scanner's mix stays as it was: what the drift and live leak monitors watch.
Evidence: n, k, M, D of the whole window at the floor; `chosen` / `stopped_at` at t.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from atr.policy.bounds import min_trials_for_zero_events
from atr.policy.calibration import fixed_sequence_passes
from atr.policy.decision import Policy
from atr.policy.recalibration_bounds import (
    count_upper,
    future_leaks_upper,
    future_share_upper,
    leak_denominator,
)

BOUNDS = ("future", "clopper_pearson", "hypergeometric")
METHOD = (
    "fixed-sequence testing over a score-only grid of low-risk thresholds from strict to "
    "lenient, stopping at the first failure; leak bound = upper bound on the not-low-risk "
    "share of the would-be CLEARs (from the unbiased label sample, per stratum) x would-be "
    "CLEARs / items confirmed not low risk"
)


def label_sample(would_clear: ArrayLike, audited: ArrayLike, safe_mode_review: ArrayLike,
                 analyst_labelled: ArrayLike) -> np.ndarray:
    """The items whose label may count: would-be CLEARs drawn for audit (labelled or still
    pending) and would-be CLEARs sent to REVIEW by safe mode that an analyst labelled.
    Anything else (INSPECT outcomes, a released item reported later) was labelled because
    of its decision or its content, and would bias the leak estimate."""
    wc = np.asarray(would_clear, dtype=bool)
    return wc & (np.asarray(audited, dtype=bool)
                 | (np.asarray(safe_mode_review, dtype=bool)
                    & np.asarray(analyst_labelled, dtype=bool)))


def certify_scanner_threshold(
    scores: ArrayLike,  # N x K in policy.outputs order, or the N low-risk scores
    would_clear: ArrayLike,
    labelled: ArrayLike,  # in the label sample (label_sample)
    low_risk_truth: ArrayLike,  # 1 / 0 / NaN (no verdict yet)
    threat_truth_any: ArrayLike,  # 1 / 0 / NaN
    policy: Policy,
    target: float | None = None,
    confidence: float | None = None,
    *,
    scanner: str | None = None,
    strata: ArrayLike | None = None,
    grid_size: int = 100,
    min_labels: int = 1,
    max_threat_cleared: int = 0,
    bound: str = "future",
) -> tuple[float | None, dict[str, Any]]:
    """The most lenient certified clear threshold for one scanner's window, or None; with
    the evidence (n, k, M, D, the bound, the grid, the method, or why nothing certifies).

    All arrays hold the scanner's window items (one row each). `target` and `confidence`
    default to the policy's targets; `strata` (e.g. the scanner state of each row) labels
    items under the same labelling design."""
    if bound not in BOUNDS:
        raise ValueError(f"bound {bound!r} not one of {BOUNDS}")
    s = np.asarray(scores, dtype=np.float64)
    low = s[:, 0] if s.ndim == 2 else s.reshape(-1)
    n_rows = len(low)
    wc, lab = _bools(would_clear, n_rows), _bools(labelled, n_rows)
    truth, threat = _floats(low_risk_truth, n_rows), _floats(threat_truth_any, n_rows)
    groups = (np.full(n_rows, "all", dtype=object) if strata is None
              else np.asarray([str(g) for g in np.asarray(strata).reshape(-1)], dtype=object))
    if len(groups) != n_rows:
        raise ValueError(f"{len(groups)} strata for {n_rows} rows")
    target = float(policy.targets.get("leak_rate_target", 0.005) if target is None else target)
    confidence = float(policy.targets.get("confidence", 0.95) if confidence is None
                       else confidence)
    if not (0 < target < 1 and 0 < confidence < 1):
        raise ValueError(f"target {target} and confidence {confidence} must lie in (0, 1)")

    floor = policy.threshold_for(scanner)
    eligible = wc & np.isfinite(low) & (low >= floor)
    sample = eligible & lab
    # Not low risk unless a verdict says low risk and no threat: pending counts as a leak.
    not_low = sample & ~((truth == 1) & (threat != 1))
    threat_hit = sample & (threat == 1)
    d = int(((truth == 0) | (threat == 1)).sum())
    used = sorted(set(groups[eligible].tolist()))
    delta = (1.0 - confidence) / max(len(used), 1)
    denominator = leak_denominator(d, n_rows, confidence, bound)
    if bound == "future":
        # Thirds of the error budget: the non-low-risk share (lower bound, leak_denominator), and
        # the would-be CLEAR share and, per stratum, its not-low-risk share (upper bounds).
        delta = (1.0 - confidence) / 3.0 / max(len(used), 1)
    evidence: dict[str, Any] = {
        "scanner": scanner, "method": METHOD, "bound": bound, "target": target,
        "confidence": confidence, "global_threshold": _num(policy.clear_threshold),
        "floor": _num(floor), "M": int(eligible.sum()), "n": int(sample.sum()),
        "k": int(not_low.sum()), "D": d, "N": n_rows,
        "denominator": float(denominator),
        "pending": int((sample & np.isnan(truth) & (threat != 1)).sum()),
        "ignored_labels": int((lab & ~eligible).sum()),
        "strata": {str(g): {"M": int((eligible & (groups == g)).sum()),
                            "n": int((sample & (groups == g)).sum())} for g in used},
    }
    why = _refusal(policy, floor, evidence, min_labels)
    if why:
        return None, {**evidence, "threshold": None, "reason": why}

    grid = _grid(low[eligible], floor, grid_size)
    if bound == "future":
        grid = grid[_powered_start(grid, low, eligible, sample, truth, threat, groups, used,
                                   delta, confidence, target, n_rows):]
    rows = [_test_point(t, low, eligible, sample, not_low, threat_hit, groups, used, delta,
                        denominator, bound, n_rows) for t in grid]
    passed = [r["leak_rate_upper"] <= target and r["threats"] <= max_threat_cleared
              for r in rows]
    n_pass = fixed_sequence_passes(passed)
    evidence["grid"] = {"size": len(grid), "from": float(grid[0]), "to": float(grid[-1]),
                        "rule": "quantiles of the would-be CLEARs' low-risk scores, and the "
                                "floor; tested strict to lenient", "tested": min(n_pass + 1,
                                                                                 len(grid))}
    if n_pass < len(grid):
        evidence["stopped_at"] = rows[n_pass]
    if n_pass == 0:
        first = rows[0]
        return None, {**evidence, "threshold": None, "reason": (
            f"the bound fails at the strictest threshold {first['threshold']:.4g} "
            f"(leak bound {first['leak_rate_upper']:.3%} > {target:.3%}, "
            f"{first['threats']} threat item(s)): {evidence['n']} labelled would-be CLEARs "
            f"of {evidence['M']}, {d} items confirmed not low risk; "
            + _labels_needed(target * d / evidence["M"], confidence, evidence["M"]))}
    chosen = rows[n_pass - 1]
    evidence.update(threshold=chosen["threshold"], chosen=chosen,
                    leak_rate_upper=chosen["leak_rate_upper"], reason=None)
    return chosen["threshold"], evidence


def _powered_start(grid: np.ndarray, low: np.ndarray, eligible: np.ndarray,
                   sample: np.ndarray, truth: np.ndarray, threat: np.ndarray,
                   groups: np.ndarray, used: list[str], delta: float, confidence: float,
                   target: float, n_rows: int) -> int:
    """Where the walk starts: after the last grid point that could not pass even with no
    leak among the labelled would-be CLEARs. At the strict end a handful of labels decide
    and the bound is not monotone in t; a walk started there would stop at once. The rule
    reads the scores, which items are labelled and the verdicts of items outside the label
    sample only, so the start is independent of the sample's labels that the tests judge
    (items independent): the fixed-sequence argument holds from it."""
    outside = ~sample & ((truth == 0) | (threat == 1))
    d_start = leak_denominator(int(outside.sum()), n_rows, confidence, "future")
    clean = np.zeros_like(sample)
    powered = [_test_point(t, low, eligible, sample, clean, clean, groups, used, delta,
                           d_start, "future", n_rows)["leak_rate_upper"] <= target
               for t in grid]
    return min(max((i + 1 for i, ok in enumerate(powered) if not ok), default=0), len(grid) - 1)


def _test_point(t: float, low: np.ndarray, eligible: np.ndarray, sample: np.ndarray,
                not_low: np.ndarray, threat_hit: np.ndarray, groups: np.ndarray,
                used: list[str], delta: float, d: float, bound: str, n_rows: int
                ) -> dict[str, Any]:
    over = low >= t
    per: dict[str, dict[str, float]] = {}
    for g in used:
        mine = over & (groups == g)
        m, n, k = (int((eligible & mine).sum()), int((sample & mine).sum()),
                   int((not_low & mine).sum()))
        if bound == "future":
            per[g] = {"M": m, "n": n, "k": k,
                      "share_upper": future_share_upper(k, n, delta) if m else 0.0}
        else:
            per[g] = {"M": m, "n": n, "k": k, "count_upper": count_upper(k, n, m, delta, bound)}
    if bound == "future":
        # coming items: N x (would-be CLEAR share at t, upper) x (worst stratum's
        # not-low-risk share among them, upper); over N x the non-low-risk share's lower bound
        leaks_up = future_leaks_upper(sum(int(p["M"]) for p in per.values()), n_rows,
                                      max((p["share_upper"] for p in per.values()), default=0.0),
                                      delta)
    else:
        leaks_up = sum(p["count_upper"] for p in per.values())
    return {"threshold": float(t), "M": sum(int(p["M"]) for p in per.values()),
            "n": sum(int(p["n"]) for p in per.values()),
            "k": sum(int(p["k"]) for p in per.values()),
            "threats": int((threat_hit & over).sum()), "leaks_upper": float(leaks_up),
            "leak_rate_upper": float(leaks_up / d) if d > 0 else math.inf, "strata": per}


def _grid(scores: np.ndarray, floor: float, size: int) -> np.ndarray:
    """Candidate thresholds, strict to lenient: observed scores only (the released set
    changes only there) and the floor; no label is looked at."""
    if size < 1:
        raise ValueError(f"grid_size must be >= 1, got {size}")
    qs = np.quantile(scores, np.linspace(0.0, 1.0, size), method="inverted_cdf")
    return np.unique(np.append(qs, floor))[::-1]


def _refusal(policy: Policy, floor: float, ev: dict[str, Any], min_labels: int) -> str | None:
    if policy.triage_only or not math.isfinite(floor) or floor > 1.0:
        return "the champion clears nothing on this scanner: there is no CLEAR to certify"
    if ev["M"] == 0:
        return "no would-be CLEAR of this scanner in the window"
    if ev["n"] < max(min_labels, 1):
        return (f"too few labels: {ev['n']} labelled would-be CLEARs (audits, analyst-labelled "
                f"safe-mode REVIEWs) of {ev['M']}, {max(min_labels, 1)} needed")
    if ev["D"] == 0:
        return "no item confirmed not low risk: the leak rate's denominator has no lower bound"
    return None


def _labels_needed(rate: float, confidence: float, m: int) -> str:
    """What would certify the floor with no leak: labels at the window's M and D (a hint:
    one stratum, the full delta)."""
    if rate >= 1.0:
        return "the threat item(s) among the labels block every threshold"
    needed = min_trials_for_zero_events(rate, confidence)
    more = "" if needed <= m else " (more than the window holds: more items confirmed " \
        "not low risk or a longer window)"
    return f"with no leak, {needed} labelled would-be CLEARs would certify the floor{more}"


def _bools(values: ArrayLike, n: int) -> np.ndarray:
    out = np.asarray(values, dtype=bool).reshape(-1)
    if len(out) != n:
        raise ValueError(f"{len(out)} flags for {n} rows")
    return out


def _floats(values: ArrayLike, n: int) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(out) != n:
        raise ValueError(f"{len(out)} truths for {n} rows")
    return out


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
