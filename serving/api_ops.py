"""Operations endpoints: liveness, readiness, the model being served, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from serving.metrics import CONTENT_TYPE_LATEST
from serving.state import ServiceState

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}  # the process answers; says nothing about the model


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    state: ServiceState = request.app.state.svc
    model = state.models.current
    if model is None:  # a load balancer sends no traffic here until a model is loaded
        return JSONResponse({"ready": False, "reason": state.models.last_error or "loading"},
                            status_code=503)
    return JSONResponse({"ready": True, "model": {"name": model.name, "version": model.version}})


@router.get("/v1/model")
async def model_info(request: Request) -> JSONResponse:
    state: ServiceState = request.app.state.svc
    models = state.models
    shadow = models.shadow.describe() if models.shadow else None
    if models.current is None:
        return JSONResponse({"detail": "no model loaded", "alias": state.settings.alias,
                             "last_error": models.last_error, "shadow": shadow},
                            status_code=503)
    await state.line.refresh_async()
    policy = models.current.policy
    return JSONResponse({**models.current.describe(), "shadow": shadow,
                         "last_error": models.last_error,
                         "clear_threshold": None if policy.clears_nothing
                         else policy.clear_threshold,
                         "scanner_clear_thresholds": dict(policy.scanner_clear_thresholds),
                         "line": state.line.describe(policy)})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    state: ServiceState = request.app.state.svc
    await state.line.refresh_async()
    state.metrics.set_line_state(state.line.stored, state.line.leaks)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
