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

import json

from pydantic import AwareDatetime, BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.domain.subscriptions import Subscription
from service.operations.admin_auth import AdminAuth
from service.operations.paging import Page
from service.storage.archive import day_of
from service.storage.deliveries import Deliveries
from service.storage.history import History
from service.storage.recordings import RecordingStore
from service.storage.subscriptions import SubscriptionStore
from service.web.api.subscriptions import Unprocessable, read_json


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subscription_id: str | None = None


class RecoverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: AwareDatetime


class DeliveriesAPI:
    def __init__(
        self,
        deliveries: Deliveries,
        subscriptions: SubscriptionStore,
        store: RecordingStore,
        history: History,
        auth: AdminAuth,
    ) -> None:
        self.deliveries = deliveries
        self.subscriptions = subscriptions
        self.store = store
        self.history = history
        self.auth = auth

    async def replay(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        recording_id = request.path_params["recording_id"]
        wanted: ReplayRequest = await read_json(request, ReplayRequest)
        queued = await self.replay_recording(recording_id, wanted.subscription_id)
        return JSONResponse({"queued": queued}, status_code=202)

    async def replay_recording(self, recording_id: str, only: str | None = None) -> int:
        """Queue the recording's events again (for subscription `only`, or every one that
        wants them); how many deliveries were queued. 404 / 422 as `HTTPException`."""
        if only is not None and not isinstance(await self.subscriptions.get(only), Subscription):
            raise Unprocessable("subscription_id", "no such subscription")
        found = await self.store.state(recording_id)
        if found is None:
            raise HTTPException(404, f"recording {recording_id[:80]!r} is unknown to the relay")
        state = await self.history.full(found)
        queued = 0
        for body in await self.history.events(state):
            kind = json.loads(body)["type"]
            queued += (
                await self.deliveries.fan_out(recording_id, kind, body, only=only)
            ).subscriptions
        return queued

    async def recover(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        subscription = await self.subscriptions.get(request.path_params["subscription_id"])
        if not isinstance(subscription, Subscription):
            raise HTTPException(404, "no such subscription (or an unreadable one)")
        wanted: RecoverRequest = await read_json(request, RecoverRequest)
        queued = await self.recover_failed(subscription, wanted.since.timestamp())
        return JSONResponse({"queued": queued}, status_code=202)

    async def recover_failed(self, subscription: Subscription, since: float) -> int:
        """Queue again what failed for `subscription` since `since` (epoch s); how many."""
        failed = await self.deliveries.failed_since(subscription.id, since)
        queued = 0
        for delivery in failed:
            recording_id, kind = delivery["recording_id"], delivery["type"]
            body: str | None = delivery.get("body")  # an operational event's: Redis keeps it
            day = ""
            if body is None:  # a recording's: in its archive
                state = await self.store.state(recording_id)
                if state is None:
                    continue  # past the retention
                body = await self.history.event(await self.history.full(state), kind)
                day = day_of(state.accepted_at or 0)
            if body is not None:
                await self.deliveries.queue(subscription, recording_id, kind, body, day)
                queued += 1
        return queued

    async def attempts(self, request: Request) -> JSONResponse:
        """A page of the attempt log: the newest first page, oldest first within it;
        `next_cursor` goes back in time."""
        await self.auth.check(request)
        subscription_id = request.path_params["subscription_id"]
        page = Page.of(request)
        if await self.subscriptions.get(subscription_id) is None:
            raise HTTPException(404, "no such subscription")
        found, total = await self.deliveries.attempts(
            subscription_id, skip_newest=page.offset, limit=page.limit
        )
        return JSONResponse({"data": found, "next_cursor": page.next(total)})
