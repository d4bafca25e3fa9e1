"""`/v1/subscriptions`: the management API for subscriptions (bearer `ADMIN_TOKEN`).

Bad input (unknown fields, wrong types, an unknown event type, a URL the relay refuses to send
to) is a `422` that names the field and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.admin_auth import AdminAuth
from service.ssrf import RefusedURL, URLGuard
from service.subscriptions import (
    Subscription,
    SubscriptionCreate,
    SubscriptionPatch,
    SubscriptionStore,
)


class Unprocessable(HTTPException):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(422, f"{field}: {message}")


async def read_body(request: Request, model: type[BaseModel]) -> Any:
    try:
        document = json.loads(await request.body() or b"{}")
    except ValueError:
        raise HTTPException(400, "body is not valid JSON") from None
    if not isinstance(document, dict):
        raise Unprocessable("body", "must be a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise Unprocessable(field, first["msg"]) from None


def public(subscription: Subscription) -> dict[str, Any]:
    """A subscription as the API shows it (its secret included: the API is admin-only)."""
    return subscription.model_dump(exclude={"previous_secret"})


class SubscriptionsAPI:
    def __init__(self, store: SubscriptionStore, auth: AdminAuth, guard: URLGuard) -> None:
        self.store = store
        self.auth = auth
        self.guard = guard

    async def _find(self, request: Request) -> Subscription:
        self.auth.check(request)
        subscription = await self.store.get(request.path_params["subscription_id"])
        if subscription is None:
            raise HTTPException(404, "no such subscription")
        return subscription

    async def _check_url(self, url: str) -> None:
        try:
            await self.guard.check(url)
        except RefusedURL as error:
            raise Unprocessable("url", str(error)) from None

    async def create(self, request: Request) -> JSONResponse:
        self.auth.check(request)
        wanted: SubscriptionCreate = await read_body(request, SubscriptionCreate)
        await self._check_url(wanted.url)
        return JSONResponse(public(await self.store.create(wanted)), status_code=201)

    async def list(self, request: Request) -> JSONResponse:
        self.auth.check(request)
        return JSONResponse({"data": [public(s) for s in await self.store.all()]})

    async def get(self, request: Request) -> JSONResponse:
        return JSONResponse(public(await self._find(request)))

    async def patch(self, request: Request) -> JSONResponse:
        subscription = await self._find(request)
        patch: SubscriptionPatch = await read_body(request, SubscriptionPatch)
        if patch.url is not None:
            await self._check_url(patch.url)
        return JSONResponse(public(await self.store.update(subscription, patch)))

    async def delete(self, request: Request) -> Response:
        subscription = await self._find(request)
        await self.store.delete(subscription.id)
        return Response(status_code=204)

    async def rotate_secret(self, request: Request) -> JSONResponse:
        subscription = await self._find(request)
        return JSONResponse(public(await self.store.rotate(subscription)))
