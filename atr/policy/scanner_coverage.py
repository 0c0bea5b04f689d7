"""Which scanners a calibrated policy's leak bound actually covers.

The Clopper–Pearson bound from calibration holds for the mix of items the
calibration split was drawn from. After a scanner change, the retrained model's
calibration split is mostly the old scanner's items plus the few labelled ones
from the new scanner, so the bound says little about the new scanner alone
(measured: a v2 certified at 0.45 % on its mix leaked 0.72 % and cleared a threat
item on 1 500 fresh items of the new scanner). This module reports, per scanner of
the calibration split, the leaks at the chosen threshold and that scanner's own
bound, and says which scanners the policy is not certified for, so a reviewer sees
it in policy.json, the evaluation metrics and the MLflow version before approving.

Items are counted under the policy's low-risk definition (its first output): `n_nonpaper`
keeps its old name and counts the items that are not low risk. A triage-only policy
clears nothing, so its evidence is recorded and no scanner is warned about.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from atr.policy.bounds import clopper_pearson, min_trials_for_zero_events
from atr.policy.config import PolicyConfig
from atr.policy.decision import Decision, Policy


def scanner_coverage(
    scores: np.ndarray,  # N x K in policy.outputs order
    truth_low_risk: np.ndarray,  # the truth column named policy.outputs[0]
    truth_threat_any: np.ndarray,
    scanner_ids: Sequence[str],
    policy: Policy,
    cfg: PolicyConfig,
) -> tuple[dict[str, Any], list[str]]:
    """Per-scanner evidence on the calibration split, and a warning per uncovered scanner.

    A scanner is `certified` when its own items that are not low risk are enough to bound
    its leak rate (>= the zero-leak minimum) and that bound is <= the target with no
    threat item cleared. With a single scanner this restates the global claim; with
    several, the warnings name the scanners the global bound does not speak for.
    """
    ids_list = [str(s) for s in scanner_ids]
    decisions = np.array([str(d) for d in policy.decide(scores, ids_list)[0]])
    cleared = decisions == Decision.CLEAR.value
    # Leaks are counted as calibration counts them (atr.policy.calibration): at or over the
    # scanner's clear threshold and under the guards, ignoring INSPECT, so never fewer.
    leak_eligible = policy.clear_eligible(np.asarray(scores, dtype=np.float64), ids_list)
    paper = np.asarray(truth_low_risk).astype(bool)
    threat = np.asarray(truth_threat_any).astype(bool)
    ids = np.asarray([str(s) for s in scanner_ids])
    needed = min_trials_for_zero_events(cfg.leak_rate_target, cfg.confidence)
    total = len(ids)
    evidence: dict[str, Any] = {}
    warnings: list[str] = []
    for scanner in sorted(set(ids.tolist())):
        mine = ids == scanner
        nonpaper = mine & ~paper
        n_nonpaper, leaks = int(nonpaper.sum()), int((leak_eligible & nonpaper).sum())
        threats_cleared = int((cleared & mine & threat).sum())
        upper = clopper_pearson(leaks, n_nonpaper, cfg.confidence).upper if n_nonpaper else 1.0
        # A triage-only policy certifies no CLEAR, for any scanner.
        certified = (n_nonpaper >= needed and upper <= cfg.leak_rate_target
                     and threats_cleared <= cfg.max_threat_cleared and not policy.triage_only)
        n_paper = int((mine & paper).sum())
        low_clear = float((cleared & mine & paper).sum()) / n_paper if n_paper else None
        evidence[scanner] = {
            "n": int(mine.sum()),
            "share": float(mine.sum()) / total,
            "n_nonpaper": n_nonpaper,
            "leaks": leaks,
            "leak_rate_upper": float(upper),
            "threats_cleared": threats_cleared,
            "low_risk_clear_rate": low_clear,
            "paper_only_clear_rate": low_clear,  # the old name of low_risk_clear_rate
            "certified": bool(certified),
        }
        if not certified and not policy.clears_nothing:
            warnings.append(
                f"scanner {scanner!r}: {n_nonpaper} non-low-risk ({policy.low_risk}=0) "
                f"calibration items ({mine.sum() / total:.0%} of the split), {leaks} cleared, "
                "its own "
                f"{cfg.confidence:.0%} leak bound {upper:.2%} (target {cfg.leak_rate_target:.2%}, "
                f"{needed} items needed even with no leak): the policy's bound holds for "
                "the calibration mix, not for this scanner on its own"
            )
    return evidence, warnings
