"""Requests per key: a token bucket per key name, in each replica.

A key's bucket holds at most `burst` tokens and refills at `rate` tokens a second; a scan
costs one token per item (a batch of n costs n). An empty bucket answers 429 with
Retry-After: the seconds until the request's tokens are back. The buckets live in the
replica's memory, so behind a load balancer with N replicas a key gets up to N times its
rate (docs/security.md); the limit is against a runaway or stolen key, not for billing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    rate: float  # tokens (items) per second, sustained
    burst: int  # bucket size: items accepted at once after a pause (>= the largest batch)

    def __post_init__(self) -> None:
        if not self.rate > 0 or self.burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, got {self}")


def default_limits() -> dict[str, RateLimit]:
    """Per role. A scanner key: 200 items/s, far above a belt (a few items/s) and above
    what one replica decides on a 2-core box; feedback is keyed in by people; operators
    change safe mode by hand."""
    return {"scanner": RateLimit(200.0, 400), "inspection": RateLimit(100.0, 200),
            "analyst": RateLimit(100.0, 200), "operator": RateLimit(2.0, 10)}


class _Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens, self.at = tokens, at


class RateLimiter:
    """take(name, limit, n) -> 0.0 when allowed, else the seconds to wait (nothing taken)."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def take(self, name: str, limit: RateLimit, n: int = 1) -> float:
        now = time.monotonic()
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(float(limit.burst), now)
        bucket.tokens = min(float(limit.burst), bucket.tokens + (now - bucket.at) * limit.rate)
        bucket.at = now
        if bucket.tokens >= n:
            bucket.tokens -= n
            return 0.0
        if n > limit.burst:
            return math.inf  # never: more items than the bucket holds
        return (n - bucket.tokens) / limit.rate


def retry_after(wait_s: float) -> str:
    """The Retry-After header: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_s)))
