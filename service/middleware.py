"""Request ids and request counts, for every HTTP request, as pure ASGI middleware."""

from __future__ import annotations

import uuid

from fastapi import Request

from service.logs import request_id as current_request_id
from service.metrics import Metrics


def new_request_id(supplied: str) -> str:
    """The client's X-Request-ID when it is short, printable ASCII; otherwise a fresh one."""
    ok = 0 < len(supplied) <= 128 and supplied.isascii() and supplied.isprintable()
    return supplied if ok else uuid.uuid4().hex


def request_id_of(request: Request) -> str:
    """The id the middleware gave this request (one made here if it never passed through it)."""
    return request.scope.setdefault("request_id", new_request_id(request.headers.get("x-request-id", "")))


class RequestMiddleware:
    """Gives each request an id (header, logs, answers) and counts it by route and status."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        rid = new_request_id(headers.get(b"x-request-id", b"").decode("latin-1"))
        scope["request_id"] = rid
        token = current_request_id.set(rid)
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            self.metrics.requests.labels(getattr(route, "path", "unmatched"), str(status)).inc()
            current_request_id.reset(token)
