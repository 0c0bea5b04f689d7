"""Random audits of CLEARs: which would-be CLEARs the service opens instead.

An audit is the only unbiased sample of what CLEAR releases: the items are drawn by the
service itself, before anyone knows their content, at a known rate. The draw is a keyed
hash of (seed, scanner, item): uniform on [0, 1), independent of the image and the score,
the same on every replica (no shared random state to coordinate) and the same when the line
resends an item; with the seed kept secret the line cannot predict it. The draw is stored
with the decision, so the audit rate can be checked after the fact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_AUDIT_SHARE = 0.02
# The share while a scanner's leak CUSUM is above 0 (atr.monitor.tightened_audits): from an
# audited leak until clean audits have paid it back. 0.5 by measurement
# (benchmarks/results/leak_monitor_tightened.json): 3.2 x faster to an alarm at twice the
# target than a fixed 2 %, for 5.3 % of CLEARs audited on average at the target; 1.0 gains
# another 12 % for twice the inspections per tightened stretch.
DEFAULT_TIGHTENED_SHARE = 0.5


def audit_draw(seed: int | str, scanner_id: str, item_id: str) -> float:
    """A uniform number in [0, 1) for this item (64 bits of SHA-256)."""
    digest = hashlib.sha256(f"{seed}\x1f{scanner_id}\x1f{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True)
class AuditPlan:
    """The audit share per scanner (`shares`), `share` for the others; `tightened` (when
    larger) for a scanner whose leak evidence is not yet paid back."""

    share: float = DEFAULT_AUDIT_SHARE
    shares: Mapping[str, float] = field(default_factory=dict)
    seed: int | str = 0
    tightened: float = DEFAULT_TIGHTENED_SHARE

    def __post_init__(self) -> None:
        for name, value in {"share": self.share, "tightened": self.tightened,
                            **dict(self.shares)}.items():
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"audit share {name!r} = {value} is not in [0, 1]")

    def share_for(self, scanner_id: str, tightened: bool = False) -> float:
        share = float(self.shares.get(scanner_id, self.share))
        # a scanner with audits off stays off: tightening scales evidence, it is not a plan
        return max(share, float(self.tightened)) if tightened and share > 0 else share

    def draw(self, scanner_id: str, item_id: str,
             tightened: bool = False) -> tuple[bool, float]:
        """(audited?, the draw) for a would-be CLEAR."""
        u = audit_draw(self.seed, scanner_id, item_id)
        return u < self.share_for(scanner_id, tightened), u


def in_random_sample(audit: bool, would_be: Mapping[str, object] | None) -> bool:
    """Whether an audit belongs to the simple random sample of would-be CLEARs: drawn at
    the normal share. A tightened share audits more items while a leak is being weighed,
    so its extra audits follow earlier outcomes; the draws below the normal share (stored
    with the decision) are a Bernoulli sample at that share whatever the state was. The
    leak test may use every audit (their outcomes are still i.i.d.); a bound on a finite
    window of items (recalibration) takes this sample."""
    if not audit:
        return False
    wb = would_be or {}
    if not wb.get("audit_tightened"):
        return True
    return float(wb.get("audit_draw", 1.0)) < float(wb.get("audit_normal_share", 0.0))

