"""Structured logs: every line one JSON object, with the request id of the request it was
written for; the id is the caller's X-Request-ID when it is a plain token, echoed back."""

from __future__ import annotations

import io
import json
import logging

import httpx
from helpers.registry import registry_at
from helpers.service import settings_for, thread_server

from serving.request_log import JsonFormatter, request_id_from, request_id_var


def test_json_lines_carry_the_request_id_and_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(replica="r1"))
    log = logging.getLogger("test.request_log")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    token = request_id_var.set("req-42")
    try:
        log.info("stored %d rows", 3, extra={"item_id": "p-1"})
    finally:
        request_id_var.reset(token)
        log.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["msg"] == "stored 3 rows" and entry["level"] == "info"
    assert entry["request_id"] == "req-42" and entry["item_id"] == "p-1"
    assert entry["replica"] == "r1" and entry["logger"] == "test.request_log"


def test_caller_ids_are_kept_only_when_they_are_plain_tokens() -> None:
    assert request_id_from([(b"x-request-id", b"line-7.parcel-9")]) == "line-7.parcel-9"
    forged = request_id_from([(b"x-request-id", b"a\r\nSet-Cookie: x=1")])
    assert forged != "a\r\nSet-Cookie: x=1" and len(forged) == 32
    assert len(request_id_from([])) == 32


def test_the_service_echoes_the_request_id(tmp_path) -> None:
    registry = registry_at(tmp_path)
    with thread_server(settings_for(registry)) as (url, _app):
        given = httpx.get(f"{url}/health", headers={"X-Request-ID": "lb-123"}, timeout=10)
        fresh = httpx.get(f"{url}/health", timeout=10)
    assert given.headers["x-request-id"] == "lb-123"
    assert len(fresh.headers["x-request-id"]) == 32
