"""POST /v1/feedback: inspection outcomes and analyst verdicts, the labels of decided items.

Authenticated by `X-API-Key`: an inspection key sends `source: inspection`, an analyst
key `source: analyst` (serving/keys.py, `atr keys issue --role inspection|analyst`); with
no key registry every call is refused: labels steer retraining, so they are never anonymous.

Label keys: the served model's taxonomy classes and both low-risk truths (`paper_only`,
`no_threat`), so whichever definition the served model clears on (its first output) is
in the stored labels whenever the verdict settles it: a missing truth is derived when
the classes settle it (every class given: both; every threat given: `no_threat`; a
positive non-paper class: `paper_only = 0`; a positive threat: `no_threat = 0`;
`paper_only = 1`: `no_threat = 1`). A verdict
that contradicts itself (`no_threat = 1` with a threat, `paper_only = 1` with a non-paper
class or with `no_threat = 0`) is refused (422), naming the label.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from atr.policy.taxonomy import LOW_RISK_DEFINITIONS, Taxonomy, default_taxonomy
from serving.api_common import keyed
from serving.api_docs import ErrorBody
from serving.keys import KeyRecord
from serving.state import ServiceState

router = APIRouter()
FeedbackKey = Annotated[KeyRecord, Depends(keyed(("inspection", "analyst"), "feedback"))]
PAPER_ONLY, NO_THREAT = LOW_RISK_DEFINITIONS


class FeedbackIn(BaseModel):
    """A verdict on a decided item; `source` must be the key's role."""
    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1, max_length=200)
    labels: dict[str, Literal[0, 1]] = Field(min_length=1, description="class (or "
                                             "paper_only/no_threat) -> 0/1, at least one")
    source: Literal["inspection", "analyst"]
    who: str = Field(min_length=1, max_length=200)
    at: datetime


class FeedbackStored(BaseModel):
    feedback_id: int
    item_id: str
    labels: dict[str, int]
    stored: bool


def _taxonomy(state: ServiceState) -> Taxonomy:
    model = state.models.current
    return model.scorer.taxonomy if model is not None else default_taxonomy()


def _check_labels(labels: dict[str, int], taxonomy: Taxonomy) -> dict[str, int]:
    if not labels:
        raise ValueError("labels: name at least one class")
    allowed = [*taxonomy.names, *LOW_RISK_DEFINITIONS]
    unknown = sorted(set(labels) - set(allowed))
    if unknown:
        raise ValueError(f"labels.{unknown[0]}: unknown class {unknown[0]!r} (taxonomy "
                         f"{taxonomy.name!r}: {', '.join(allowed)})")
    out = {k: int(v) for k, v in labels.items()}
    given = set(out)
    threat = next((t for t in taxonomy.threats if out.get(t)), None)
    other = next((c for c in taxonomy.names if c not in taxonomy.paper and out.get(c)), None)
    if out.get(NO_THREAT) and threat:
        raise ValueError(f"labels.{NO_THREAT}: 1 contradicts {threat} = 1")
    if out.get(PAPER_ONLY) and other:
        raise ValueError(f"labels.{PAPER_ONLY}: 1 contradicts {other} = 1")
    if out.get(PAPER_ONLY) and out.get(NO_THREAT) == 0:
        raise ValueError(f"labels.{PAPER_ONLY}: 1 contradicts {NO_THREAT} = 0 (paper only "
                         "means no threat)")
    # Derive what the classes settle: a positive is evidence on its own, a zero only when
    # every class that could make the flag false was given.
    if NO_THREAT not in out and (threat or set(taxonomy.threats) <= given):
        out[NO_THREAT] = int(threat is None)
    if NO_THREAT not in out and out.get(PAPER_ONLY):
        out[NO_THREAT] = 1  # only paper products: no threat
    if PAPER_ONLY not in out and (other or set(taxonomy.names) <= given):
        out[PAPER_ONLY] = int(taxonomy.paper_only(out))
    if PAPER_ONLY not in out and out.get(NO_THREAT) == 0:
        out[PAPER_ONLY] = 0  # a threat item is never paper-only
    return out


_REFUSALS = {401: "missing, unknown or revoked key", 403: "the key's role is not the source",
             404: "no decision stored for the item", 422: "a malformed verdict (named)",
             429: "the key's rate limit"}


@router.post("/v1/feedback", status_code=201, response_model=None,
             responses={201: {"model": FeedbackStored},
                        **{c: {"model": ErrorBody, "description": d}
                           for c, d in _REFUSALS.items()}})
async def feedback(request: Request, fb: FeedbackIn, key: FeedbackKey) -> JSONResponse:
    state: ServiceState = request.app.state.svc
    if fb.source != key.role:
        state.metrics.auth_refused.labels(reason="wrong_role").inc()
        raise HTTPException(403, f"key {key.name!r} has role {key.role!r}: it may send "
                            f"source {key.role!r} only, not {fb.source!r}")
    try:
        labels = _check_labels(fb.labels, _taxonomy(state))
    except ValueError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=422)
    at = fb.at if fb.at.tzinfo else fb.at.replace(tzinfo=UTC)
    feedback_id = await asyncio.get_running_loop().run_in_executor(
        None, state.recorder.add_feedback, fb.item_id, labels, fb.source, fb.who, at)
    if feedback_id is None:
        return JSONResponse({"detail": f"item_id {fb.item_id!r}: no decision stored for it"},
                            status_code=404)
    return JSONResponse({"feedback_id": feedback_id, "item_id": fb.item_id, "labels": labels,
                         "stored": True}, status_code=201)
