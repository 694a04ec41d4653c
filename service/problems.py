"""Every answer other than 200 is an RFC 9457 problem document: the exception that carries one, the
handlers that write it (for the service's own errors, HTTP errors, validation errors and bugs), and
its entries in the OpenAPI document."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.middleware import request_id_of
from service.schemas import Problem

log = logging.getLogger("service")

PROBLEM_TYPE = "application/problem+json"
PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}


class ProblemError(Exception):
    """An answer other than 200, as an RFC 9457 problem."""

    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


def problem(status: int, title: str, detail: str, request_id: str | None, headers=None) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, request_id=request_id).model_dump()
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_TYPE)


async def on_problem(request: Request, exc: ProblemError) -> JSONResponse:
    return problem(exc.status, exc.title, exc.detail, request_id_of(request), exc.headers)


async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return problem(exc.status_code, "HTTP error", str(exc.detail), request_id_of(request))


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: still a problem document, never a page; the details stay in the log."""
    rid = request_id_of(request)
    log.error("request %s: unexpected %s", rid, type(exc).__name__, exc_info=exc)
    detail = f"unexpected error (request {rid})"
    return problem(500, "Internal error", detail, rid, {"X-Request-ID": rid})


async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return problem(422, "Invalid request", details, request_id_of(request))


def add_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(RequestValidationError, on_validation)


def problems(*statuses: int) -> dict:
    """OpenAPI entries for answers that are RFC 9457 problems."""
    return {status: {"model": Problem} for status in statuses}


def use_problem_media_type(document: dict) -> None:
    """Put the problem answers of FastAPI's OpenAPI document under their real media type."""
    for operation in (op for path in document["paths"].values() for op in path.values()):
        for answer in operation["responses"].values():
            content = answer.get("content", {})
            if content.get("application/json", {}).get("schema") == PROBLEM_SCHEMA:
                answer["content"] = {PROBLEM_TYPE: content["application/json"]}
