"""POST /v1/feedback: inspection outcomes and analyst verdicts, the labels of decided items.

Authenticated by `X-API-Key` (keys from serve.api_keys and $ATR_API_KEYS); with no key
configured every call is refused: labels steer retraining, so they are never anonymous.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atr.taxonomy import Taxonomy, default_taxonomy
from serving.state import ServiceState

router = APIRouter()
PAPER_ONLY = "paper_only"


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1, max_length=200)
    labels: dict[str, Literal[0, 1]]
    source: Literal["inspection", "analyst"]
    who: str = Field(min_length=1, max_length=200)
    at: datetime


def _authorised(request: Request, state: ServiceState) -> bool:
    given = request.headers.get("x-api-key", "")
    # compare_digest against every key: the time taken does not reveal a key's prefix.
    return any(hmac.compare_digest(given.encode(), key.encode())
               for key in state.settings.all_api_keys()) and bool(given)


def _taxonomy(state: ServiceState) -> Taxonomy:
    model = state.models.current
    return model.scorer.taxonomy if model is not None else default_taxonomy()


def _check_labels(labels: dict[str, int], taxonomy: Taxonomy) -> dict[str, int]:
    if not labels:
        raise ValueError("labels: name at least one class")
    unknown = sorted(set(labels) - {*taxonomy.names, PAPER_ONLY})
    if unknown:
        raise ValueError(f"labels.{unknown[0]}: unknown class {unknown[0]!r} (taxonomy "
                         f"{taxonomy.name!r}: {', '.join(taxonomy.names)}, {PAPER_ONLY})")
    out = {k: int(v) for k, v in labels.items()}
    if PAPER_ONLY not in out and set(taxonomy.names) <= set(out):
        out[PAPER_ONLY] = int(taxonomy.paper_only(out))  # complete labels imply it
    return out


def _fields(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                     for e in exc.errors())


@router.post("/v1/feedback")
async def feedback(request: Request) -> JSONResponse:
    state: ServiceState = request.app.state.svc
    if not _authorised(request, state):
        return JSONResponse({"detail": "missing or wrong X-API-Key"}, status_code=401,
                            headers={"WWW-Authenticate": "X-API-Key"})
    try:
        doc: Any = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return JSONResponse({"detail": f"body is not valid JSON: {exc}"}, status_code=400)
    try:
        fb = FeedbackIn.model_validate(doc)
        labels = _check_labels(fb.labels, _taxonomy(state))
    except ValidationError as exc:
        return JSONResponse({"detail": _fields(exc)}, status_code=422)
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
