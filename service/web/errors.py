"""How errors look to callers: JSON `{"error": message}` with the right status, never a trace.

A Redis outage is a `503` with `Retry-After`, which makes Plivo retry the callback later.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("recording_relay.errors")


def first_problem(error: ValidationError, whole: str) -> tuple[str, str]:
    """The field a validation error is about (`whole` when it is about the whole document) and
    what is wrong with it, for a message that names the field."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or whole
    return field, first["msg"].removeprefix("Value error, ")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code != 404:
        log.warning(
            "%s %s refused: %s %s", request.method, request.url.path, exc.status_code, exc.detail
        )
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def storage_unavailable(request: Request, exc: Exception) -> Response:
    log.warning(
        "redis unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__
    )
    return JSONResponse(
        {"error": "storage unavailable, nothing was accepted; retry later"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client went away (or was cut off by `service.web.http_limits`) mid-request: no one
    hears this answer."""
    log.info(
        "%s %s: the client went away before sending the whole request",
        request.method,
        request.url.path,
    )
    return JSONResponse({"error": "request incomplete"}, status_code=400)


async def unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal error"}, status_code=500)


HANDLERS = {
    HTTPException: http_error,
    ClientDisconnect: client_gone,
    RedisError: storage_unavailable,
    Exception: unexpected,
}


async def respond(request: Request, exc: Exception) -> Response:
    """The answer to `exc`, from the first of `HANDLERS` that fits it."""
    for kind, handler in HANDLERS.items():
        if isinstance(exc, kind):
            return await handler(request, exc)
    raise exc
