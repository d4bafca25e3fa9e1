"""`/v1/subscriptions`: the management API for subscriptions (bearer `ADMIN_TOKEN`).

Bad input (unknown fields, wrong types, nulls, an unknown event type, a malformed URL or one the
relay refuses to send to) is a `422` that names the field and changes nothing. Lists are paged
(`limit`, `cursor`). A stored record the relay cannot read is listed under `unreadable`,
answers `409` where it would be shown or changed, and can be deleted.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.domain.subscriptions import Subscription, SubscriptionCreate, SubscriptionPatch
from service.operations.admin_auth import AdminAuth
from service.operations.paging import Page
from service.operations.subscriptions import Subscriptions
from service.web.body import read_json


def public(subscription: Subscription) -> dict[str, Any]:
    """A subscription as the API shows it (its secret included: the API is admin-only)."""
    return subscription.model_dump(exclude={"previous_secret"})


class SubscriptionsAPI:
    """The handlers of `/v1/subscriptions` and `/v1/subscriptions/{subscription_id}`."""

    def __init__(self, subscriptions: Subscriptions, auth: AdminAuth) -> None:
        self.subscriptions = subscriptions
        self.auth = auth

    async def _find(self, request: Request) -> Subscription:
        await self.auth.check(request)
        return await self.subscriptions.find(request.path_params["subscription_id"])

    async def create(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        wanted: SubscriptionCreate = await read_json(request, SubscriptionCreate)
        return JSONResponse(public(await self.subscriptions.add(wanted)), status_code=201)

    async def list(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        page = Page.of(request.query_params)
        found, unreadable = await self.subscriptions.store.scan()
        chosen = found[page.offset : page.offset + page.limit]
        return JSONResponse(
            {
                "data": [public(s) for s in chosen],
                "next_cursor": page.next(len(found)),
                "unreadable": [{"id": u.id, "error": u.error} for u in unreadable],
            }
        )

    async def get(self, request: Request) -> JSONResponse:
        return JSONResponse(public(await self._find(request)))

    async def patch(self, request: Request) -> JSONResponse:
        subscription = await self._find(request)
        patch: SubscriptionPatch = await read_json(request, SubscriptionPatch)
        return JSONResponse(public(await self.subscriptions.change(subscription, patch)))

    async def delete(self, request: Request) -> Response:
        await self.auth.check(request)
        await self.subscriptions.remove(request.path_params["subscription_id"])
        return Response(status_code=204)

    async def rotate_secret(self, request: Request) -> JSONResponse:
        subscription = await self._find(request)
        return JSONResponse(public(await self.subscriptions.store.rotate(subscription)))
