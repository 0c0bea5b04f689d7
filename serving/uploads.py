"""Reading scan requests: raw image bodies, multipart forms, JSON with base64 images.

A malformed request (missing item_id, wrong content type, bad JSON) is refused with a 4xx
naming the field: the sender has a bug to fix. A well-formed request whose image is bad
is not refused here: it becomes an item that the service INSPECTs (fail-safe).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

RAW_TYPES = ("image/", "application/octet-stream")
MAX_ITEMS = 256  # per batch request; more is a client bug (and one slow reply)
MAX_ID = {"item_id": 200, "scanner_id": 100}  # the prediction store's column sizes


class RequestError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class ScanInput:
    item_id: str
    scanner_id: str
    data: bytes | None  # None when too large (never held in memory)
    filename: str | None = None
    too_large: bool = False


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _ident(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RequestError(422, f"{field} is required (a non-empty string)")
    if len(value) > MAX_ID[field]:
        raise RequestError(422, f"{field} is longer than {MAX_ID[field]} characters")
    return value.strip()


async def _raw_body(request: Request, limit: int) -> tuple[bytes | None, bool]:
    """The body, or (None, True) past `limit` bytes (the rest is drained, not kept)."""
    declared = request.headers.get("content-length")
    chunks, size, too_large = [], 0, bool(declared and declared.isdigit()
                                          and int(declared) > limit)
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            too_large = True
        if not too_large:
            chunks.append(chunk)
    return (None, True) if too_large else (b"".join(chunks), False)


async def _upload(file: Any, field: str, limit: int) -> tuple[bytes | None, str | None, bool]:
    if not isinstance(file, UploadFile):
        raise RequestError(422, f"form field {field!r} must be a file upload")
    if file.size is not None and file.size > limit:
        return None, file.filename, True
    data = await file.read(limit + 1)
    return (None, file.filename, True) if len(data) > limit else (data, file.filename, False)


@dataclass
class ScanFields:
    """What FastAPI parsed for POST /v1/scans (api_scans declares them): the multipart
    form's fields, or the raw body's ids as query parameters or X- headers."""
    file: Any = None
    item_id: str | None = None
    scanner_id: str | None = None
    query_item_id: str | None = None
    query_scanner_id: str | None = None
    header_item_id: str | None = None
    header_scanner_id: str | None = None


async def read_scan(request: Request, limit: int, fields: ScanFields) -> ScanInput:
    """POST /v1/scans: raw image body (+ item_id/scanner_id in query or X- headers) or
    multipart with `file`, `item_id`, `scanner_id`."""
    media = media_type(request)
    if media == "multipart/form-data":
        if fields.file is None:
            raise RequestError(422, "multipart field 'file' (the image) is missing")
        item_id = _ident(fields.item_id, "item_id")
        scanner_id = _ident(fields.scanner_id, "scanner_id")
        data, name, too_large = await _upload(fields.file, "file", limit)
        return ScanInput(item_id, scanner_id, data, name, too_large)
    if media.startswith(RAW_TYPES):
        item_id = _ident(fields.query_item_id or fields.header_item_id, "item_id")
        scanner_id = _ident(fields.query_scanner_id or fields.header_scanner_id, "scanner_id")
        data, too_large = await _raw_body(request, limit)
        return ScanInput(item_id, scanner_id, data, None, too_large)
    raise RequestError(415, f"Content-Type {media or '(none)'!r} not accepted: send image/*, "
                            "application/octet-stream or multipart/form-data")


async def read_batch(request: Request, limit: int, files: list[Any] | None,
                     item_ids: list[str] | None, scanner_id: str | None,
                     scanner_ids: list[str] | None) -> list[ScanInput]:
    """POST /v1/scans/batch: multipart (`files` x N, `item_ids` x N, `scanner_id` or
    `scanner_ids` x N, as FastAPI parsed them) or JSON {"scanner_id"?, "items": [{item_id,
    image_b64, scanner_id?, filename?}]}."""
    media = media_type(request)
    if media == "multipart/form-data":
        files, ids = files or [], item_ids or []
        scanners = scanner_ids or [scanner_id] * len(files)
        if not files:
            raise RequestError(422, "multipart field 'files' (one per item) is missing")
        _check_count(len(files), {"item_ids": len(ids), "scanner_ids": len(scanners)})
        out = []
        for file, item_id, scanner in zip(files, ids, scanners, strict=True):
            data, name, too_large = await _upload(file, "files", limit)
            out.append(ScanInput(_ident(item_id, "item_id"), _ident(scanner, "scanner_id"),
                                 data, name, too_large))
        return out
    if media == "application/json":
        return _json_batch(await request.body(), limit)
    raise RequestError(415, f"Content-Type {media or '(none)'!r} not accepted for a batch: "
                            "send multipart/form-data or application/json")


def _check_count(n: int, others: dict[str, int]) -> None:
    if n > MAX_ITEMS:
        raise RequestError(422, f"{n} items in one batch; at most {MAX_ITEMS}")
    for field, count in others.items():
        if count != n:
            raise RequestError(422, f"{field} has {count} values for {n} files")


def _json_batch(body: bytes, limit: int) -> list[ScanInput]:
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"body is not valid JSON: {exc}") from exc
    items = doc.get("items") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise RequestError(422, "items must be a non-empty list of {item_id, image_b64}")
    _check_count(len(items), {})
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RequestError(422, f"items[{i}] must be an object")
        try:
            item_id = _ident(item.get("item_id"), "item_id")
            scanner = _ident(item.get("scanner_id") or doc.get("scanner_id"), "scanner_id")
        except RequestError as exc:
            raise RequestError(422, f"items[{i}].{exc.detail}") from exc
        encoded = item.get("image_b64")
        if not isinstance(encoded, str):
            raise RequestError(422, f"items[{i}].image_b64 is required (base64 image bytes)")
        if len(encoded) * 3 // 4 > limit + 3:
            out.append(ScanInput(item_id, scanner, None, item.get("filename"), True))
            continue
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RequestError(422, f"items[{i}].image_b64 is not valid base64: {exc}") from exc
        too_large = len(data) > limit
        out.append(ScanInput(item_id, scanner, None if too_large else data,
                             item.get("filename"), too_large))
    return out
