"""Replay, recover and the attempt log (bearer `ADMIN_TOKEN`).

- `POST /v1/recordings/{recording_id}/replay`, optional `{"subscription_id"}`: the recording's
  events again, to every matching subscription or the one named.
- `POST /v1/subscriptions/{id}/recover` with `{"since": ISO 8601}`: everything that failed for
  the subscription since then, again.
- `GET /v1/subscriptions/{id}/attempts`: the subscription's recent attempts (the window Redis
  keeps: `service.storage.deliveries.WINDOW`), newest last.
Re-sent messages keep their `webhook-id`.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.domain.attempts import Attempt
from service.domain.problems import NotFound
from service.domain.subscriptions import Subscription
from service.operations.admin_auth import AdminAuth
from service.operations.paging import Page
from service.operations.redelivery import Redelivery
from service.operations.subscriptions import Subscriptions
from service.web.api.operation import BAD_BODY, BAD_PAGE, ERROR, PAGE, documented
from service.web.body import read_json

UNKNOWN_RECORDING = {404: ("a recording the relay does not know", ERROR)}
UNKNOWN_SUBSCRIPTION = {404: ("no such subscription", ERROR)}


class ReplayRequest(BaseModel):
    """What to replay a recording's events to: one subscription, or every one (null)."""

    model_config = ConfigDict(extra="forbid")
    subscription_id: str | None = None


class RecoverRequest(BaseModel):
    """From when to send again what failed for a subscription."""

    model_config = ConfigDict(extra="forbid")
    since: AwareDatetime


class Queued(BaseModel):
    """How many webhooks an action queued."""

    queued: int = Field(description="webhooks queued")


class AttemptList(BaseModel):
    """A page of a subscription's attempt log."""

    data: list[Attempt] = Field(description="oldest first within the page")
    next_cursor: str | None = Field(description="pass as `cursor` for older attempts")


class DeliveriesAPI:
    """Replay, recover and the attempt log."""

    def __init__(
        self, redelivery: Redelivery, subscriptions: Subscriptions, auth: AdminAuth
    ) -> None:
        self.redelivery = redelivery
        self.subscriptions = subscriptions
        self.auth = auth

    @documented(
        "replay",
        {202: ("queued", Queued), **UNKNOWN_RECORDING, **BAD_BODY},
        summary="The recording's events again, with the same webhook-ids",
        body=ReplayRequest,
        body_required=False,
    )
    async def replay(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        recording_id = request.path_params["recording_id"]
        wanted: ReplayRequest = await read_json(request, ReplayRequest)
        queued = Queued(queued=await self.redelivery.replay(recording_id, wanted.subscription_id))
        return JSONResponse(queued.model_dump(), status_code=202)

    @documented(
        "recover",
        {202: ("queued again", Queued), **BAD_BODY, **UNKNOWN_SUBSCRIPTION},
        summary="Send again everything that failed for it since a time",
        body=RecoverRequest,
    )
    async def recover(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        subscription = await self.subscriptions.store.get(request.path_params["subscription_id"])
        if not isinstance(subscription, Subscription):
            raise NotFound("no such subscription (or an unreadable one)")
        wanted: RecoverRequest = await read_json(request, RecoverRequest)
        queued = Queued(
            queued=await self.redelivery.recover(subscription, wanted.since.timestamp())
        )
        return JSONResponse(queued.model_dump(), status_code=202)

    @documented(
        "listAttempts",
        {200: ("a page of attempts", AttemptList), **BAD_PAGE, **UNKNOWN_SUBSCRIPTION},
        summary="The attempt log, newest page first",
        query=PAGE,
    )
    async def attempts(self, request: Request) -> JSONResponse:
        """A page of the attempt log: the newest first page, oldest first within it;
        `next_cursor` goes back in time."""
        await self.auth.check(request)
        subscription_id = request.path_params["subscription_id"]
        page = Page.of(request.query_params)
        if await self.subscriptions.store.get(subscription_id) is None:
            raise NotFound("no such subscription")
        found, total = await self.redelivery.deliveries.attempts(
            subscription_id, skip_newest=page.offset, limit=page.limit
        )
        return JSONResponse(AttemptList(data=found, next_cursor=page.next(total)).model_dump())
