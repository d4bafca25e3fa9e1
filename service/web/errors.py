"""How errors look to callers: JSON `{"error": message}` with the right status, never a trace.

The domain's refusals (`service.domain.problems`) get their status codes here.

A Redis outage is a `503` with `Retry-After`, which makes Plivo retry the callback later.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from service.domain.problems import (
    Conflict,
    Gone,
    Invalid,
    NotFound,
    Problem,
    Throttled,
    Unauthorized,
)

log = logging.getLogger("recording_relay.errors")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code != 404:
        log.warning(
            "%s %s refused: %s %s", request.method, request.url.path, exc.status_code, exc.detail
        )
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


STATUS: dict[type[Problem], int] = {
    NotFound: 404,
    Invalid: 422,
    Conflict: 409,
    Gone: 410,
    Unauthorized: 401,
    Throttled: 429,
}


def answer_to(problem: Problem) -> HTTPException:
    """The status code and headers a domain error is answered with."""
    status = next(code for kind, code in STATUS.items() if isinstance(problem, kind))
    headers = None
    if isinstance(problem, Throttled):
        headers = {"Retry-After": str(problem.retry_after)}
    elif isinstance(problem, Unauthorized):
        headers = {"WWW-Authenticate": "Bearer"}
    return HTTPException(status, str(problem), headers)


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return await http_error(request, answer_to(exc))


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
    Problem: refused,
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
