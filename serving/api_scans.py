"""POST /v1/scans and /v1/scans/batch: the sorting line's calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from orjson import dumps as orjson_dumps

from serving.api_common import SCOPE_KEY, authenticate, charge, check_scanner, keyed
from serving.api_docs import BATCH_JSON_BODY, FILE_FORMAT, RAW_IMAGE_BODY, SCAN_RESPONSES
from serving.decisions import FAILSAFE_REASONS
from serving.keys import KeyRecord
from serving.scan_service import StoreUnavailable
from serving.state import ServiceState
from serving.uploads import (
    MAX_ID,
    RAW_TYPES,
    RequestError,
    ScanFields,
    media_type,
    read_batch,
    read_scan,
)


class ScannerKeyRoute(APIRoute):
    """Checks the scanner key (and charges one token) before FastAPI reads the body: an
    unknown caller's upload is refused unparsed.

    A raw-image scan (the line's hot path) then goes straight to `_raw_scan`: the same
    parser reading the same declared parameters (item_id/scanner_id as query or X- header,
    the body), without FastAPI's per-request parameter solving, which measured ~100 us a
    request (serving/README.md). Multipart scans and batches take FastAPI's handler."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        raw_path = self.path == "/v1/scans"

        async def checked(request: Request) -> Response:
            state: ServiceState = request.app.state.svc
            key = authenticate(state, request.headers.get("x-api-key"), ("scanner",), "scan")
            charge(state, key)
            if raw_path and media_type(request).startswith(RAW_TYPES):
                return await _raw_scan(request, state, key)
            request.scope[SCOPE_KEY] = key
            return await handler(request)

        return checked


class DecisionResponse(JSONResponse):
    """The same compact UTF-8 JSON as JSONResponse, rendered by orjson: 0.4 instead of
    5 us a reply on the event loop (scores are finite or null already: decisions._finite)."""

    def render(self, content: Any) -> bytes:
        return orjson_dumps(content)


router = APIRouter(route_class=ScannerKeyRoute)
Scanner = Annotated[KeyRecord, Depends(keyed(("scanner",), "scan"))]
ItemId = Annotated[str | None, Form(max_length=MAX_ID["item_id"])]
ScannerId = Annotated[str | None, Form(max_length=MAX_ID["scanner_id"])]


def public(row: dict[str, Any]) -> dict[str, Any]:
    """The reply for one item: what the sorter needs, not the stored embedding/stats."""
    model = ({"name": row["model_name"], "version": row["model_version"]}
             if row.get("model_version") is not None else None)
    return {"request_id": row["request_id"], "item_id": row["item_id"],
            "scanner_id": row["scanner_id"], "decision": row["decision"],
            "reason": row["reason"], "scores": row.get("scores") or {}, "model": model,
            "latency_ms": row["latency_ms"],
            # where the evidence is (REVIEW/INSPECT with a heat-map package; else null)
            "localisation": row.get("localisation"),
            "replay": bool(row.get("replay"))}  # a resent item_id: the stored decision


async def _one(state: ServiceState, item: Any, started: float) -> tuple[int, dict[str, Any]]:
    try:
        row, status = await state.scans.decide(item, started), 200
    except StoreUnavailable as exc:
        row, status = exc.row, 503  # INSPECT, but not acknowledged as stored
    state.metrics.decisions.labels(decision=row["decision"]).inc()
    if status == 200 and not row.get("replay"):  # a replay was counted the first time
        state.metrics.count_line(row)
    if row["reason"] in FAILSAFE_REASONS or status != 200:
        state.metrics.failsafe.labels(reason=row["reason"]).inc()
    return status, {**public(row), "stored": status == 200}


@router.post("/v1/scans", summary="Decide one scan", responses=SCAN_RESPONSES,
             openapi_extra=RAW_IMAGE_BODY)
async def scan(
    request: Request, key: Scanner,
    file: Annotated[UploadFile | None, File(description="the image (multipart)",
                                            json_schema_extra=FILE_FORMAT)] = None,
    item_id: ItemId = None, scanner_id: ScannerId = None,
    query_item_id: Annotated[str | None, Query(alias="item_id", max_length=MAX_ID["item_id"],
                                               description="raw body: the item")] = None,
    query_scanner_id: Annotated[str | None, Query(
        alias="scanner_id", max_length=MAX_ID["scanner_id"],
        description="raw body: the scanner (one of the key's)")] = None,
    header_item_id: Annotated[str | None, Header(alias="X-Item-Id")] = None,
    header_scanner_id: Annotated[str | None, Header(alias="X-Scanner-Id")] = None,
) -> JSONResponse:
    """The image as the raw body (image/*, application/octet-stream; ids as query
    parameters or X-Item-Id / X-Scanner-Id headers), or a multipart form. A bad image is
    decided INSPECT (fail-safe); a malformed request is refused 4xx naming the field."""
    fields = ScanFields(file, item_id, scanner_id, query_item_id, query_scanner_id,
                        header_item_id, header_scanner_id)
    return await _scan(request, request.app.state.svc, key, fields)


async def _raw_scan(request: Request, state: ServiceState, key: KeyRecord) -> Response:
    """A raw-image scan's declared parameters, read as FastAPI would (ScannerKeyRoute)."""
    q, h = request.query_params, request.headers
    fields = ScanFields(query_item_id=q.get("item_id"), query_scanner_id=q.get("scanner_id"),
                        header_item_id=h.get("x-item-id"),
                        header_scanner_id=h.get("x-scanner-id"))
    return await _scan(request, state, key, fields)


async def _scan(request: Request, state: ServiceState, key: KeyRecord,
                fields: ScanFields) -> JSONResponse:
    started = time.monotonic()
    try:
        item = await read_scan(request, state.settings.max_upload_bytes, fields)
    except RequestError as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)
    check_scanner(state, key, item.scanner_id)
    status, body = await _one(state, item, started)
    return DecisionResponse(body, status_code=status)


@router.post("/v1/scans/batch", summary="Decide several scans", responses=SCAN_RESPONSES,
             openapi_extra=BATCH_JSON_BODY)
async def scan_batch(
    request: Request, key: Scanner,
    files: Annotated[list[UploadFile] | None, File(description="one image per item",
                                                   json_schema_extra=FILE_FORMAT)] = None,
    item_ids: Annotated[list[str] | None, Form(description="one per file, in order")] = None,
    scanner_id: ScannerId = None,
    scanner_ids: Annotated[list[str] | None, Form(description="one per file (or scanner_id)")
                           ] = None,
) -> JSONResponse:
    """Multipart (`files`, `item_ids`, `scanner_id` or `scanner_ids`) or JSON with base64
    images. Every item's scanner must be one of the key's; a batch of n costs n tokens."""
    started = time.monotonic()
    state: ServiceState = request.app.state.svc
    try:
        items = await read_batch(request, state.settings.max_upload_bytes, files, item_ids,
                                 scanner_id, scanner_ids)
    except RequestError as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)
    for item in items:
        check_scanner(state, key, item.scanner_id)
    if len(items) > 1:
        # the first item was charged with the key check
        charge(state, key, len(items) - 1, call_items=len(items))
    results = await asyncio.gather(*(_one(state, item, started) for item in items))
    status = 503 if any(s != 200 for s, _ in results) else 200
    return DecisionResponse([body for _, body in results], status_code=status)
