"""Safe mode per scanner: read it, and let an operator enter or lift it.

    GET  /v1/scanners                      the stored flags, the log, uncovered scanners
    POST /v1/scanners/{scanner_id}/safe-mode   {"action": "enter"|"lift", "by": NAME,
                                                "note": "..."}   header X-API-Key

Changes need an operator key (`atr keys issue --role operator`); with no key registry
every change is refused. Who and when are recorded in `scanner_events`. A
scanner in safe mode because the champion's calibration does not certify it cannot be
lifted here (409): that ends when a version certified for it becomes champion
(`atr recalibrate`, then the gate and a reviewer's approval).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from atr.store.safe_mode import enter_safe_mode, lift_safe_mode, scanner_events
from serving.api_common import keyed
from serving.api_docs import ErrorBody
from serving.keys import KeyRecord
from serving.line_state import uncovered
from serving.state import ServiceState
from serving.uploads import MAX_ID

router = APIRouter()
OperatorKey = Annotated[KeyRecord, Depends(keyed(("operator",), "safe-mode change"))]
ScannerPath = Annotated[str, Path(min_length=1, max_length=MAX_ID["scanner_id"])]


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


@router.post("/v1/scanners/{scanner_id}/safe-mode", responses={
    c: {"model": ErrorBody, "description": d} for c, d in {
        401: "missing, unknown or revoked key", 403: "not an operator key",
        409: "an uncovered scanner cannot be lifted here", 422: "a malformed change (named)",
        429: "the key's rate limit", 503: "store_error: nothing changed"}.items()})
async def change(scanner_id: ScannerPath, doc: SafeModeIn, request: Request,
                 key: OperatorKey) -> JSONResponse:
    state: ServiceState = request.app.state.svc
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
