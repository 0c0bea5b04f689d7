"""POST /v1/scans and /v1/scans/batch: the sorting line's calls."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serving.decisions import FAILSAFE_REASONS
from serving.scan_service import StoreUnavailable
from serving.state import ServiceState
from serving.uploads import RequestError, read_batch, read_scan

router = APIRouter()


def public(row: dict[str, Any]) -> dict[str, Any]:
    """The reply for one item: what the sorter needs, not the stored embedding/stats."""
    model = ({"name": row["model_name"], "version": row["model_version"]}
             if row.get("model_version") is not None else None)
    return {"request_id": row["request_id"], "item_id": row["item_id"],
            "scanner_id": row["scanner_id"], "decision": row["decision"],
            "reason": row["reason"], "scores": row.get("scores") or {}, "model": model,
            "latency_ms": row["latency_ms"]}


async def _one(state: ServiceState, item: Any, started: float) -> tuple[int, dict[str, Any]]:
    try:
        row, status = await state.scans.decide(item, started), 200
    except StoreUnavailable as exc:
        row, status = exc.row, 503  # INSPECT, but not acknowledged as stored
    state.metrics.decisions.labels(decision=row["decision"]).inc()
    if status == 200:
        state.metrics.count_line(row)
    if row["reason"] in FAILSAFE_REASONS or status != 200:
        state.metrics.failsafe.labels(reason=row["reason"]).inc()
    return status, {**public(row), "stored": status == 200}


@router.post("/v1/scans")
async def scan(request: Request) -> JSONResponse:
    started = time.monotonic()
    state: ServiceState = request.app.state.svc
    try:
        item = await read_scan(request, state.settings.max_upload_bytes)
    except RequestError as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)
    status, body = await _one(state, item, started)
    return JSONResponse(body, status_code=status)


@router.post("/v1/scans/batch")
async def scan_batch(request: Request) -> JSONResponse:
    started = time.monotonic()
    state: ServiceState = request.app.state.svc
    try:
        items = await read_batch(request, state.settings.max_upload_bytes)
    except RequestError as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)
    results = await asyncio.gather(*(_one(state, item, started) for item in items))
    status = 503 if any(s != 200 for s, _ in results) else 200
    return JSONResponse([body for _, body in results], status_code=status)
