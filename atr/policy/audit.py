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


def audit_draw(seed: int | str, scanner_id: str, item_id: str) -> float:
    """A uniform number in [0, 1) for this item (64 bits of SHA-256)."""
    digest = hashlib.sha256(f"{seed}\x1f{scanner_id}\x1f{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True)
class AuditPlan:
    """The audit share per scanner (`shares`), `share` for the others."""

    share: float = DEFAULT_AUDIT_SHARE
    shares: Mapping[str, float] = field(default_factory=dict)
    seed: int | str = 0

    def __post_init__(self) -> None:
        for name, value in {"share": self.share, **dict(self.shares)}.items():
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"audit share {name!r} = {value} is not in [0, 1]")

    def share_for(self, scanner_id: str) -> float:
        return float(self.shares.get(scanner_id, self.share))

    def draw(self, scanner_id: str, item_id: str) -> tuple[bool, float]:
        """(audited?, the draw) for a would-be CLEAR."""
        u = audit_draw(self.seed, scanner_id, item_id)
        return u < self.share_for(scanner_id), u
