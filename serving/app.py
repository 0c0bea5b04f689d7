"""The FastAPI app of the sorting line: `create_app(settings)`.

Imports inference code only (ONNX Runtime, numpy, the prediction store, mlflow's client):
never torch, Lightning or training modules. tests/serving checks it in a fresh process.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving import api_feedback, api_ops, api_safe_mode, api_scans
from serving.api_common import validation_failed
from serving.request_log import request_id_from, request_id_var
from serving.settings import Settings
from serving.state import ServiceState

# Metric label per known path; anything else is "other" (no label per random URL).
ENDPOINTS = frozenset({"/v1/scans", "/v1/scans/batch", "/v1/feedback", "/v1/model",
                       "/health", "/ready", "/metrics", "/v1/scanners"})


def create_app(settings: Settings) -> FastAPI:
    state = ServiceState.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.scans.batcher.start()
        state.models.start()  # first load in the background: /health answers at once
        try:
            yield
        finally:
            state.models.stop()
            await state.scans.stop()
            state.recorder.close()

    # FastAPI's native OpenTelemetry hooks are off: /metrics is the service's telemetry, and
    # the check costs the line's hot path on every request.
    app = FastAPI(title="ATR sorting-line service", version="1", lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.svc = state
    app.add_exception_handler(RequestValidationError, validation_failed)  # today's 4xx bodies

    app.add_middleware(RequestMetrics, state=state)
    for module in (api_scans, api_feedback, api_ops, api_safe_mode):
        app.include_router(module.router)
    return app


class RequestMetrics:
    """Requests and latency per endpoint: a plain ASGI middleware (Starlette's
    BaseHTTPMiddleware costs a task and a stream per request on the line's hot path)."""

    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app = app
        self.metrics = state.metrics
        # which worker process answered (serve.workers > 1: serving/workers.py)
        self.worker = (b"x-atr-worker", str(os.getpid()).encode("ascii"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]  # an app that dies before answering counts as a 500
        request_id = request_id_from(scope.get("headers", []))
        token = request_id_var.set(request_id)

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], self.worker,
                                      (b"x-request-id", request_id.encode("ascii"))]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            request_id_var.reset(token)
            path: Any = scope.get("path", "")
            endpoint = path if path in ENDPOINTS else "other"
            self.metrics.requests.labels(endpoint=endpoint, status=str(status[0])).inc()
            self.metrics.latency.labels(endpoint=endpoint).observe(
                time.perf_counter() - started)
