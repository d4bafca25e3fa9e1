"""`/v1/subscriptions`: the management API for subscriptions (bearer `ADMIN_TOKEN`).

Bad input (unknown fields, wrong types, nulls, an unknown event type, a malformed URL or one the
relay refuses to send to) is a `422` that names the field and changes nothing. Lists are paged
(`limit`, `cursor`). A stored record the relay cannot read is listed under `unreadable`,
answers `409` where it would be shown or changed, and can be deleted.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.domain.subscriptions import Subscription, SubscriptionCreate, SubscriptionPatch
from service.operations.admin_auth import AdminAuth
from service.operations.paging import Page
from service.ssrf import RefusedURL, URLGuard
from service.storage.deliveries import Deliveries
from service.storage.subscriptions import LimitReached, SubscriptionStore, Unreadable
from service.web.body import json_document, read_body
from service.web.errors import first_problem


class Unprocessable(HTTPException):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(422, f"{field}: {message}")


def invalid(error: ValidationError) -> Unprocessable:
    """The first problem of `error` as a 422 that names its field."""
    return Unprocessable(*first_problem(error, "body"))


async def read_json(request: Request, model: type[BaseModel]) -> Any:
    """The request's JSON body as `model`; 400 if it is not JSON, 422 naming the field."""
    document = json_document(await read_body(request) or b"{}")
    if not isinstance(document, dict):
        raise Unprocessable("body", "must be a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise invalid(error) from None


def public(subscription: Subscription) -> dict[str, Any]:
    """A subscription as the API shows it (its secret included: the API is admin-only)."""
    return subscription.model_dump(exclude={"previous_secret"})


class SubscriptionsAPI:
    def __init__(
        self,
        store: SubscriptionStore,
        deliveries: Deliveries,
        auth: AdminAuth,
        guard: URLGuard,
    ) -> None:
        self.store = store
        self.deliveries = deliveries
        self.auth = auth
        self.guard = guard

    async def _find(self, request: Request) -> Subscription:
        await self.auth.check(request)
        found = await self.store.get(request.path_params["subscription_id"])
        if found is None:
            raise HTTPException(404, "no such subscription")
        if isinstance(found, Unreadable):
            raise HTTPException(
                409, f"the stored subscription is unreadable ({found.error}); delete it"
            )
        return found

    async def _check_url(self, url: str) -> None:
        try:
            await self.guard.check(url)
        except RefusedURL as error:
            raise Unprocessable("url", str(error)) from None

    async def create(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        wanted: SubscriptionCreate = await read_json(request, SubscriptionCreate)
        return JSONResponse(public(await self.add(wanted)), status_code=201)

    async def add(self, wanted: SubscriptionCreate) -> Subscription:
        """Create a subscription to a URL the relay may send to; 422 or 409 otherwise."""
        await self._check_url(wanted.url)
        try:
            return await self.store.create(wanted)
        except LimitReached as error:
            raise HTTPException(409, str(error)) from None

    async def list(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        page = Page.of(request)
        found, unreadable = await self.store.scan()
        start = page.offset
        chosen = found[start : start + page.limit]
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
        return JSONResponse(public(await self.change(subscription, patch)))

    async def change(self, subscription: Subscription, patch: SubscriptionPatch) -> Subscription:
        """`subscription` with `patch` applied and stored; 422 naming the field otherwise."""
        if "url" in patch.model_fields_set and patch.url is not None:
            await self._check_url(patch.url)
        try:
            return await self.store.update(subscription, patch)
        except ValidationError as error:
            raise invalid(error) from None

    async def delete(self, request: Request) -> Response:
        await self.auth.check(request)
        subscription_id = request.path_params["subscription_id"]
        if not await self.store.delete(subscription_id):
            raise HTTPException(404, "no such subscription")
        await self.deliveries.drop(subscription_id)
        return Response(status_code=204)

    async def rotate_secret(self, request: Request) -> JSONResponse:
        subscription = await self._find(request)
        return JSONResponse(public(await self.store.rotate(subscription)))
