"""Sending again: a recording's events (replay) and what failed for a subscriber (recover).
Re-sent messages keep their `webhook-id`."""

from __future__ import annotations

import json

from service.domain.problems import Invalid, NotFound
from service.domain.subscriptions import Subscription
from service.storage.archive import day_of
from service.storage.deliveries import Deliveries
from service.storage.history import History
from service.storage.recordings import RecordingStore
from service.storage.subscriptions import SubscriptionStore


class Redelivery:
    """Queues events again, from Redis or the archive, for the dispatcher to send."""

    def __init__(
        self,
        deliveries: Deliveries,
        subscriptions: SubscriptionStore,
        store: RecordingStore,
        history: History,
    ) -> None:
        self.deliveries = deliveries
        self.subscriptions = subscriptions
        self.store = store
        self.history = history

    async def replay(self, recording_id: str, only: str | None = None) -> int:
        """Queue the recording's events again (for subscription `only`, or every one that
        wants them); how many deliveries were queued. `Invalid` for an unknown `only`,
        `NotFound` for an unknown recording."""
        if only is not None and not isinstance(await self.subscriptions.get(only), Subscription):
            raise Invalid("subscription_id", "no such subscription")
        found = await self.store.state(recording_id)
        if found is None:
            raise NotFound(f"recording {recording_id[:80]!r} is unknown to the relay")
        state = await self.history.full(found)
        queued = 0
        for body in await self.history.events(state):
            kind = json.loads(body)["type"]
            queued += (
                await self.deliveries.fan_out(recording_id, kind, body, only=only)
            ).subscriptions
        return queued

    async def recover(self, subscription: Subscription, since: float) -> int:
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
