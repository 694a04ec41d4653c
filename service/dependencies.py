"""FastAPI dependencies: the application's shared state, and the API-key checks.

All are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, which would cost
every request a hop to a thread and back.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.problems import ProblemError
from service.state import State

# Documents the Bearer scheme in OpenAPI; the check itself is Keys.check (constant time, own messages).
BEARER = HTTPBearer(scheme_name="bearer", auto_error=False, description="Authorization: Bearer <key>")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]


async def get_state(request: Request) -> State:
    """The state of the application serving this request (``app.state.perception``)."""
    return request.app.state.perception


AppState = Annotated[State, Depends(get_state)]


def check_key(request: Request, state: State, admin: bool) -> None:
    """Raises a 401 or 403 problem unless the request's Bearer key opens this route."""
    failure = state.keys.check(request.headers.get("authorization"), admin)
    if failure:
        status, reason = failure
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        raise ProblemError(status, "Unauthorized" if status == 401 else "Forbidden", reason, headers)


async def inference_key(request: Request, state: AppState, _: Credentials) -> None:
    """An inference key (or none, when no inference keys are configured)."""
    check_key(request, state, admin=False)


async def admin_key(request: Request, state: AppState, _: Credentials) -> None:
    """The admin key: model operations."""
    check_key(request, state, admin=True)


InferenceKey = Depends(inference_key)
AdminKey = Depends(admin_key)
