"""The FastAPI application, assembled: settings and shared state, middleware, routers, problem handlers."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service.middleware import RequestMiddleware
from service.problems import add_problem_handlers, use_problem_media_type
from service.routers import health, models, perceive, web
from service.settings import Settings
from service.state import State, shutdown, start


@asynccontextmanager
async def lifespan(app: FastAPI):
    state = app.state.perception
    await start(state)
    yield
    await shutdown(state)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: read from the environment); the model loads at start-up."""
    state = State.create(settings or Settings())
    app = FastAPI(
        title="Perception service",
        version="1",
        summary="Object detection, semantic segmentation and metric depth from camera frames, in one pass.",
        lifespan=lifespan,
    )
    app.state.perception = state
    if state.settings.cors_origins.strip():
        origins = [o.strip() for o in state.settings.cors_origins.split(",") if o.strip()]
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Deadline-Ms", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"])  # fmt: skip
    app.add_middleware(RequestMiddleware, metrics=state.metrics)
    for router in (web.router, health.router, models.router, perceive.router):
        app.include_router(router)
    add_problem_handlers(app)
    app.openapi = openapi_builder(app)
    return app


def openapi_builder(app: FastAPI) -> Callable[[], dict]:
    """FastAPI's document, with problem answers under their real media type and the served model in
    the example answer (built once, on the first request for it)."""
    default = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            document = default()
            use_problem_media_type(document)
            perceive.show_served_model(document, app.state.perception.engine)
        return app.openapi_schema

    return openapi
