"""Per-scanner clear thresholds at calibration time: a scanner of the calibration split
whose own items do not certify the global threshold, but are enough to certify a stricter
one, gets that one (`Policy.scanner_clear_thresholds`).

Why: the global bound holds for the split's mix. A frontline batch of a second scanner in
the split can carry the main scanner's own bound just over the target (measured: 5 leaks
in 1 973 of its non-paper items, bound 0.53 %, while the mix certifies at 0.49 %), and
serving then holds that scanner in safe mode (no automatic CLEAR at all). Its own,
slightly stricter threshold keeps it clearing, under a bound of its own.

Each scanner's threshold comes from the same fixed-sequence search as the global one
(atr.policy.calibration.search_clear_threshold) on that scanner's items only, never below
the global threshold; the claim is per scanner, each at the policy's confidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from atr.policy.bounds import min_trials_for_zero_events
from atr.policy.config import PolicyConfig
from atr.policy.decision import Policy


def certify_scanner_thresholds(scores: np.ndarray, truth_low_risk: np.ndarray,
                               truth_threat_any: np.ndarray, scanner_ids: Sequence[str],
                               policy: Policy, cfg: PolicyConfig,
                               coverage: dict[str, Any]) -> dict[str, float]:
    """Thresholds found for the uncovered scanners with enough items (set on `policy`)."""
    from atr.policy.calibration import search_clear_threshold

    if policy.triage_only or policy.clears_nothing:
        return {}
    s = np.asarray(scores, dtype=np.float64)
    ids = np.asarray([str(x) for x in scanner_ids])
    nonpaper = ~np.asarray(truth_low_risk).astype(bool)
    threat = np.asarray(truth_threat_any).astype(bool)
    guard_at = np.array([policy.clear_guards.get(t, np.inf) for t in policy.threats])
    guard_ok = np.all(s[:, 1:] < guard_at, axis=1)
    inspect_at = np.array([policy.inspect_thresholds[t] for t in policy.threats])
    inspected = np.any(s[:, 1:] >= inspect_at, axis=1)
    needed = min_trials_for_zero_events(cfg.leak_rate_target, cfg.confidence)
    found: dict[str, float] = {}
    for scanner, evidence in coverage.items():
        mine = ids == scanner
        if evidence.get("certified") or int((nonpaper & mine).sum()) < needed:
            continue
        t, _ = search_clear_threshold(
            paper_score=s[mine, 0], nonpaper=nonpaper[mine], leak_eligible=guard_ok[mine],
            threat_cleared_eligible=(guard_ok & ~inspected & threat)[mine], cfg=cfg)
        if np.isfinite(t) and t <= 1.0:
            found[scanner] = max(float(t), policy.clear_threshold)
    policy.scanner_clear_thresholds.update(found)
    return found
