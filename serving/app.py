"""The FastAPI app of the sorting line: `create_app(settings)`.

Imports inference code only (ONNX Runtime, numpy, the prediction store, mlflow's client):
never torch, Lightning or training modules. tests/serving checks it in a fresh process.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from serving import api_feedback, api_ops, api_scans
from serving.settings import Settings
from serving.state import ServiceState

# Metric label per known path; anything else is "other" (no label per random URL).
ENDPOINTS = frozenset({"/v1/scans", "/v1/scans/batch", "/v1/feedback", "/v1/model",
                       "/health", "/ready", "/metrics"})


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
            await state.scans.batcher.stop()
            state.recorder.close()

    app = FastAPI(title="ATR sorting-line service", version="1", lifespan=lifespan)
    app.state.svc = state

    @app.middleware("http")
    async def count(request: Request,
                    call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        path = request.url.path
        endpoint = path if path in ENDPOINTS else "other"
        state.metrics.requests.labels(endpoint=endpoint, status=str(response.status_code)).inc()
        state.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - started)
        return response

    for module in (api_scans, api_feedback, api_ops):
        app.include_router(module.router)
    return app
