"""Probes and metrics: /healthz (liveness), /readyz (readiness), /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.dependencies import AppState
from service.schemas import ModelRef, Readiness

router = APIRouter()


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz():
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    response_model_exclude_none=True,
    summary="Readiness: a model is loaded and warmed, and the service is not draining",
    responses={503: {"model": Readiness, "description": "loading or draining"}},
)
async def readyz(state: AppState):
    if state.ready and not state.draining:
        return {"status": "ready", "model": ModelRef(name=state.engine.name, version=state.engine.version)}
    return JSONResponse({"status": "draining" if state.draining else "loading"}, status_code=503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus_metrics(state: AppState):
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
