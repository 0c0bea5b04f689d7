"""The parts of the scan endpoints' OpenAPI contract that FastAPI cannot infer from the
handlers' parameters: the raw-image and JSON-batch bodies (FastAPI declares the
multipart form itself) and the reply bodies. Documentation only: the handlers return
their JSON directly, so nothing here is validated on the hot path."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serving.uploads import MAX_ID, MAX_ITEMS


class ModelRef(BaseModel):
    name: str
    version: str


class EvidenceBox(BaseModel):
    label: str  # a threat class of the taxonomy
    score: float = Field(ge=0, le=1)
    xyxy: list[float] = Field(min_length=4, max_length=4,
                              description="x0, y0, x1, y1 in the uploaded image's pixels")


class EvidencePeak(BaseModel):
    label: str
    score: float = Field(ge=0, le=1)
    xy: list[float] = Field(min_length=2, max_length=2, description="x, y in image pixels")


class Localisation(BaseModel):
    """Where the evidence is (docs/localisation.md): boxes per threat class and the
    heat-map's peak. Null for CLEAR, fail-safe rows, packages without a heat-map, or
    serve.localisation=false."""
    boxes: list[EvidenceBox]
    peak: EvidencePeak


class ScanDecision(BaseModel):
    """One item's answer. 200: decided and stored; 503: INSPECT, not acknowledged stored."""
    model_config = ConfigDict(extra="allow")

    request_id: str
    item_id: str
    scanner_id: str
    decision: Literal["CLEAR", "REVIEW", "INSPECT"]
    reason: str
    scores: dict[str, float]
    model: ModelRef | None
    latency_ms: float
    localisation: Localisation | None = None
    replay: bool = False  # a resent item_id: the decision stored the first time (docs/store.md)
    stored: bool


class ErrorBody(BaseModel):
    """A refused call: no decision (the line holds the item for a human)."""
    detail: str


class BatchItemJson(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1, max_length=MAX_ID["item_id"])
    image_b64: str = Field(json_schema_extra={"format": "byte"})  # base64 image bytes
    scanner_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID["scanner_id"])
    filename: str | None = None


class BatchJson(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scanner_id: str | None = Field(default=None, min_length=1,
                                   max_length=MAX_ID["scanner_id"],
                                   description="for every item without its own")
    items: list[BatchItemJson] = Field(min_length=1, max_length=MAX_ITEMS)


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its $defs inlined (an operation's openapi_extra cannot
    add components, and `#/$defs/...` would not resolve inside the OpenAPI document)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


_BINARY = {"schema": {"type": "string", "format": "binary"}}
# FastAPI declares the multipart form from the handler; its fields are optional there
# because the raw-body form needs none of them, but a multipart request needs all three.
RAW_IMAGE_BODY: dict[str, Any] = {"requestBody": {"content": {
    "multipart/form-data": {"schema": {"required": ["file", "item_id", "scanner_id"]}},
    "image/png": _BINARY, "image/tiff": _BINARY, "image/jpeg": _BINARY,
    "application/octet-stream": _BINARY}}}
BATCH_JSON_BODY: dict[str, Any] = {"requestBody": {"content": {
    "multipart/form-data": {"schema": {"required": ["files", "item_ids"]}},
    "application/json": {"schema": _inline(BatchJson.model_json_schema())}}}}
FILE_FORMAT = {"format": "binary"}  # an upload's part, as OpenAPI names file content
_ERRORS = {
    401: "missing, unknown or revoked X-API-Key (or no key registry)",
    403: "the key's role or scanners do not cover this call (the scanner is named)",
    400: "a batch body that is not JSON", 415: "Content-Type not accepted",
    422: "a malformed request (the field is named)", 429: "the key's rate limit (Retry-After)"}
SCAN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ScanDecision, "description": "decided and stored (a batch: a list)"},
    **{code: {"model": ErrorBody, "description": what} for code, what in _ERRORS.items()},
    503: {"model": ScanDecision, "description": "INSPECT: the store failed, not acknowledged "
          "(or ErrorBody: the keys file cannot be read)"},
}
