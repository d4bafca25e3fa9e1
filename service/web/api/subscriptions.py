"""`/v1/subscriptions`: the management API for subscriptions (bearer `ADMIN_TOKEN`).

Bad input (unknown fields, wrong types, nulls, an unknown event type, a malformed URL or one the
relay refuses to send to) is a `422` that names the field and changes nothing. Lists are paged
(`limit`, `cursor`). A stored record the relay cannot read is listed under `unreadable`,
answers `409` where it would be shown or changed, and can be deleted.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.domain.endpoint_auth import MASK, masked
from service.domain.subscriptions import Subscription, SubscriptionCreate, SubscriptionPatch
from service.operations.admin_auth import AdminAuth
from service.operations.paging import Page
from service.operations.subscriptions import Subscriptions
from service.web.api.operation import BAD_BODY, BAD_PAGE, ERROR, PAGE, documented
from service.web.body import read_json

UNKNOWN = {404: ("no such subscription", ERROR)}
UNREADABLE = {409: ("the stored subscription is unreadable: delete it", ERROR)}
# Where a created subscription's id goes next (OpenAPI links, followed by stateful tests).
LINKS = {
    name: {"operationId": operation, "parameters": {"subscription_id": "$response.body#/id"}}
    for name, operation in [
        ("GetSubscription", "getSubscription"),
        ("PatchSubscription", "patchSubscription"),
        ("RotateSecret", "rotateSecret"),
        ("Attempts", "listAttempts"),
        ("Recover", "recover"),
        ("DeleteSubscription", "deleteSubscription"),
    ]
}


class SubscriptionList(BaseModel):
    """A page of subscriptions."""

    data: list[Subscription]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")
    unreadable: list[dict[str, str]] = Field(
        description="stored records the relay cannot read: `id` and `error`; delete them"
    )


def public(subscription: Subscription) -> dict[str, Any]:
    """A subscription as the API shows it: its signing secret included (the API is
    admin-only), its headers' values and its authentication's secrets never."""
    shown = subscription.model_dump(exclude={"previous_secret"})
    shown["headers"] = dict.fromkeys(subscription.headers, MASK)
    shown.update(masked(subscription.auth, subscription.tls))
    return shown


class SubscriptionsAPI:
    """The handlers of `/v1/subscriptions` and `/v1/subscriptions/{subscription_id}`."""

    def __init__(self, subscriptions: Subscriptions, auth: AdminAuth) -> None:
        self.subscriptions = subscriptions
        self.auth = auth

    async def _find(self, request: Request) -> Subscription:
        await self.auth.check(request)
        return await self.subscriptions.find(request.path_params["subscription_id"])

    @documented(
        "createSubscription",
        {
            201: ("created, with its signing secret", Subscription),
            409: ("SUBSCRIPTIONS_MAX subscriptions exist already", ERROR),
            **BAD_BODY,
        },
        summary="Subscribe a URL to events",
        body=SubscriptionCreate,
        links=LINKS,
    )
    async def create(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        wanted: SubscriptionCreate = await read_json(request, SubscriptionCreate)
        return JSONResponse(public(await self.subscriptions.add(wanted)), status_code=201)

    @documented(
        "listSubscriptions",
        {200: ("a page of subscriptions", SubscriptionList), **BAD_PAGE},
        summary="The subscriptions, oldest first, a page at a time",
        query=PAGE,
    )
    async def list(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        page = Page.of(request.query_params)
        found, unreadable = await self.subscriptions.store.scan()
        listed = SubscriptionList(
            data=found[page.offset : page.offset + page.limit],
            next_cursor=page.next(len(found)),
            unreadable=[{"id": u.id, "error": u.error} for u in unreadable],
        )
        shown = listed.model_dump(exclude={"data"})
        return JSONResponse({"data": [public(s) for s in listed.data], **shown})

    @documented(
        "getSubscription", {200: ("the subscription", Subscription), **UNKNOWN, **UNREADABLE}
    )
    async def get(self, request: Request) -> JSONResponse:
        return JSONResponse(public(await self._find(request)))

    @documented(
        "patchSubscription",
        {200: ("changed", Subscription), **BAD_BODY, **UNKNOWN, **UNREADABLE},
        summary="Change url, events, description or enabled (none may be null)",
        body=SubscriptionPatch,
    )
    async def patch(self, request: Request) -> JSONResponse:
        subscription = await self._find(request)
        patch: SubscriptionPatch = await read_json(request, SubscriptionPatch)
        return JSONResponse(public(await self.subscriptions.change(subscription, patch)))

    @documented(
        "deleteSubscription",
        {204: "deleted", **UNKNOWN},
        summary="Delete it, its attempt log and what is queued for it",
    )
    async def delete(self, request: Request) -> Response:
        await self.auth.check(request)
        await self.subscriptions.remove(request.path_params["subscription_id"])
        return Response(status_code=204)

    @documented(
        "rotateSecret",
        {200: ("rotated", Subscription), **UNKNOWN, **UNREADABLE},
        summary="A new secret; the old one signs alongside for 24 hours",
    )
    async def rotate_secret(self, request: Request) -> JSONResponse:
        subscription = await self._find(request)
        return JSONResponse(public(await self.subscriptions.store.rotate(subscription)))
