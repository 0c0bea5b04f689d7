"""Safe mode per scanner: read it, and let an operator enter or lift it.

    GET  /v1/scanners                      the stored flags, the log, uncovered scanners
    POST /v1/scanners/{scanner_id}/safe-mode   {"action": "enter"|"lift", "by": NAME,
                                                "note": "..."}   header X-API-Key

Changes need an operator key (serve.operator_keys, $ATR_OPERATOR_KEYS); with none
configured every change is refused. Who and when are recorded in `scanner_events`. A
scanner in safe mode because the champion's calibration does not certify it cannot be
lifted here (409): that ends when a version certified for it becomes champion
(`atr recalibrate`, then the gate and a reviewer's approval).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atr.store.safe_mode import enter_safe_mode, lift_safe_mode, scanner_events
from serving.api_common import key_accepted, validation_detail
from serving.line_state import uncovered
from serving.state import ServiceState

router = APIRouter()


class SafeModeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["enter", "lift"]
    by: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=1000)


@router.get("/v1/scanners")
async def scanners(request: Request) -> JSONResponse:
    state: ServiceState = request.app.state.svc

    def read() -> list[dict[str, Any]]:
        with state.recorder.sessions() as session:
            return scanner_events(session)

    events = await asyncio.get_running_loop().run_in_executor(None, read)
    await state.line.refresh_async(force=True)
    model = state.models.current
    return JSONResponse({**state.line.describe(model.policy if model else None),
                         "events": events[-200:]}, media_type="application/json")


@router.post("/v1/scanners/{scanner_id}/safe-mode")
async def change(scanner_id: str, request: Request) -> JSONResponse:
    state: ServiceState = request.app.state.svc
    if not key_accepted(request, state.settings.all_operator_keys()):
        return JSONResponse({"detail": "missing or wrong operator X-API-Key"}, status_code=401,
                            headers={"WWW-Authenticate": "X-API-Key"})
    try:
        doc = SafeModeIn.model_validate_json(await request.body())
    except ValidationError as exc:
        return JSONResponse({"detail": validation_detail(exc)}, status_code=422)
    model = state.models.current
    version = model.version if model else None
    if doc.action == "lift" and model is not None and state.settings.uncovered_safe_mode \
            and uncovered(model.policy, scanner_id):
        return JSONResponse({"detail": f"scanner {scanner_id!r} is not certified by the "
                             f"champion v{version}'s calibration: it leaves safe mode when a "
                             "version certified for it becomes champion (atr recalibrate)"},
                            status_code=409)
    detail = {"note": doc.note} if doc.note else None

    def apply() -> bool:
        with state.recorder.sessions() as session:
            if doc.action == "enter":
                return enter_safe_mode(session, scanner_id, "operator", doc.by, version, detail)
            return lift_safe_mode(session, scanner_id, doc.by, "operator", version, detail)

    try:
        changed = await asyncio.get_running_loop().run_in_executor(None, apply)
    except Exception as exc:  # the flag is the store's: no change acknowledged without it
        return JSONResponse({"detail": f"store_error: {exc}"[:300]}, status_code=503)
    await state.line.refresh_async(force=True)
    return JSONResponse({"scanner_id": scanner_id, "action": doc.action, "changed": changed,
                         "safe_mode": scanner_id in state.line.stored, "by": doc.by},
                        status_code=200)
