"""The routes Plivo calls, answered ahead of Starlette's routing.

Plivo's callbacks are the only traffic that comes in volume. `CallbackRoutes` sends them
straight to their endpoints and everything else (health, the management API) to the Starlette
app; a `CallbackEndpoint` checks the method, runs its handler and turns its errors into the
same JSON answers as the rest of the app (`service.web.errors`). Skipping Starlette's middleware and
router layers for these two paths is about a tenth of a callback's CPU (bench/ingest).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.web import errors

Handler = Callable[[Request], Awaitable[Response]]


class CallbackEndpoint:
    """One of Plivo's callback paths: its handler and the methods it takes."""

    def __init__(self, handler: Handler, methods: tuple[str, ...]) -> None:
        self.handler = handler
        self.methods = methods
        self.allow = {"Allow": ", ".join(methods)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            if request.method not in self.methods:
                raise HTTPException(405, "method not allowed", headers=self.allow)
            response = await self.handler(request)
        except Exception as exc:
            response = await errors.respond(request, exc)
        await response(scope, receive, send)


class CallbackRoutes:
    """ASGI app: exact paths to their `CallbackEndpoint`, anything else to `app`."""

    def __init__(self, app: ASGIApp, routes: Mapping[str, CallbackEndpoint]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.routes.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)
