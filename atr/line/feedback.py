"""The frontline's verdicts for the items the line routed to humans.

An INSPECTed parcel is opened (source `inspection`); a REVIEWed image is read by an
analyst (source `analyst`). Both give back the true labels, which here are the
simulator's, or a replayed archive's (only the classes it labels completely, and its
positives; an item it knows nothing about gets no verdict: `no_truth`). Only a share
of them comes back (`feedback_share`), as in an office where not every outcome is keyed
in. Customs also opens a random share of CLEARed parcels
(post-clearance audit, `audit_share`): without it a model that wrongly clears a new kind
of item would never be told. Items the service itself chose for an audit (reason `audit`)
are always opened and answered with the truth, as inspectors would. Feedback is sent after
the timed run so it never loads the service while latency is being measured. Each verdict
goes with the key of its source's role (line.inspection_key, line.analyst_key); a 429 is
retried after its Retry-After, so no verdict is lost to a rate limit.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np

from atr.line.parcels import Parcel
from atr.line.sender import make_client
from atr.policy.taxonomy import Taxonomy, default_taxonomy

SOURCES = {"INSPECT": "inspection", "REVIEW": "analyst", "CLEAR": "inspection"}
RATE_LIMIT_RETRIES = 20  # 429s in a row for one verdict before it counts as failed


def choose(records: Sequence[dict[str, Any]], share: float, seed: int,
           audit_share: float = 0.0) -> list[int]:
    """Indices of the records that get feedback (a fixed draw per seed): a `share` of
    those routed to humans, an `audit_share` of those cleared."""
    for name, value in (("feedback_share", share), ("audit_share", audit_share)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"line.{name} must be in [0, 1], got {value}")
    draws = np.random.default_rng([seed, 0xFEED]).random(len(records))
    return [i for i, r in enumerate(records) if r["decision"] in SOURCES
            and (r.get("reason") == "audit"
                 or draws[i] < (audit_share if r["decision"] == "CLEAR" else share))]


def body(parcel: Parcel, decision: str, who: str, taxonomy: Taxonomy) -> dict[str, Any]:
    return {
        "item_id": parcel.item_id,
        # the simulator's complete truth, or what a replayed archive knows (Parcel)
        "labels": parcel.verdict_labels(taxonomy),
        "source": SOURCES[decision],
        "who": who,
        "at": datetime.now(UTC).isoformat(),
    }


async def send_feedback(
    base_url: str, parcels: Sequence[Parcel], records: Sequence[dict[str, Any]], *,
    share: float, seed: int, keys: Mapping[str, str | None], who: str, timeout_s: float,
    concurrency: int = 4, audit_share: float = 0.0, taxonomy: Taxonomy | None = None,
) -> dict[str, Any]:
    taxonomy = taxonomy or default_taxonomy()
    chosen = choose(records, share, seed, audit_share)
    # A replayed item whose archive labels nothing it could report gets no verdict.
    picked = [i for i in chosen if parcels[i].verdict_labels(taxonomy)]
    results: list[tuple[str, int, str | None]] = []
    queue = iter(picked)

    async def worker(client: httpx.AsyncClient) -> None:
        for i in queue:
            doc = body(parcels[i], records[i]["decision"], who, taxonomy)
            key = keys.get(doc["source"])
            headers = {"X-API-Key": key} if key else {}
            try:
                for _ in range(RATE_LIMIT_RETRIES):
                    resp = await client.post("/v1/feedback", json=doc, headers=headers)
                    if resp.status_code != 429:
                        break
                    await asyncio.sleep(float(resp.headers.get("retry-after", "1")))
                err = None if resp.is_success else f"HTTP {resp.status_code}: {resp.text[:200]}"
                results.append((doc["source"], resp.status_code, err))
            except httpx.HTTPError as exc:
                results.append((doc["source"], 0, f"{type(exc).__name__}: {exc}"))

    async with make_client(base_url, timeout_s, concurrency) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    errors = [e for _, _, e in results if e]
    return {
        "eligible": sum(1 for r in records if r["decision"] != "CLEAR"),
        "audits_answered": sum(1 for i in picked if records[i].get("reason") == "audit"),
        "sent": len(results),
        "no_truth": len(chosen) - len(picked),
        "stored": len(results) - len(errors),
        "failed": len(errors),
        "by_source": dict(Counter(s for s, _, e in results if not e)),
        "first_errors": errors[:3],
    }
