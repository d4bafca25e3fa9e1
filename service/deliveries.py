"""Deliveries: one per event and subscription, with its attempts, kept in Redis.

- `rr:delivery:{subscription}:{message}`: the delivery (the exact body to send, its status,
  attempts, last error). The message id (`webhook-id`) is derived from the recording and the
  event type, so every retry and every replay carries the same one.
- `rr:outbox:{subscription}:{recording}` (ZSET): the recording's pending messages for that
  subscriber, scored by their event's place in a recording's life; only the first is sent, so
  `recording.completed` arrives before `recording.transcribed`, replays and recoveries too.
- `rr:failed:{subscription}`: deliveries that exhausted their schedule, by time (for recover).
- `rr:attempts:{subscription}` and `rr:recording:{id}:attempts`: the attempt log, newest last.
- `rr:failing-since:{subscription}`: when its current run of failures began.

Deleting a subscription deletes its attempt log, failed list and failing-since mark
(`forget`); deliveries still queued for it are dropped when they come due.

Queuing a delivery makes it due now in the delivery queue that the workers drain
(`workers.delivery_queue`); queuing it again (a replay) sends it again, with the same id.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from redis.asyncio import Redis

from service.events import EVENT_TYPES
from service.subscriptions import Subscription, SubscriptionStore

DUE_KEY = "rr:deliveries:due"  # member `{subscription}:{message}`, score: due (epoch ms)
LEASED_KEY = "rr:deliveries:leased"  # the same, taken by a worker; score: lease lapses (ms)


def message_id(recording_id: str, event_type: str) -> str:
    digest = hashlib.sha256(f"{recording_id}\n{event_type}".encode()).hexdigest()
    return f"msg_{digest[:26]}"


def delivery_key(subscription_id: str, msg_id: str) -> str:
    return f"rr:delivery:{subscription_id}:{msg_id}"


def failed_key(subscription_id: str) -> str:
    return f"rr:failed:{subscription_id}"


def attempts_key(subscription_id: str) -> str:
    return f"rr:attempts:{subscription_id}"


def failing_since_key(subscription_id: str) -> str:
    """When the subscriber's current run of failures began (deleted by a success)."""
    return f"rr:failing-since:{subscription_id}"


def due_member(subscription_id: str, msg_id: str) -> str:
    """A delivery as the delivery queue names it (`workers.delivery_queue`)."""
    return f"{subscription_id}:{msg_id}"


def outbox_key(subscription_id: str, recording_id: str) -> str:
    return f"rr:outbox:{subscription_id}:{recording_id}"


def recording_attempts_key(recording_id: str) -> str:
    return f"rr:recording:{recording_id}:attempts"


def _place(event_type: str) -> int:
    """Where an event comes in a recording's life (others, like operational ones: first)."""
    return EVENT_TYPES.index(event_type) + 1 if event_type in EVENT_TYPES else 0


class Deliveries:
    def __init__(self, redis: Redis, subscriptions: SubscriptionStore) -> None:
        self.redis = redis
        self.subscriptions = subscriptions

    async def fan_out(
        self, recording_id: str, event_type: str, body: str, only: str | None = None
    ) -> int:
        """Queue `body` for every enabled subscription that wants `event_type` (or only `only`);
        re-queuing one already delivered sends it again (a replay), with the same message id."""
        queued = 0
        for subscription in await self.subscriptions.all():
            if only is not None and subscription.id != only:
                continue
            if subscription.wants(event_type):
                await self.queue(subscription, recording_id, event_type, body)
                queued += 1
        return queued

    async def queue(
        self, subscription: Subscription, recording_id: str, event_type: str, body: str
    ) -> None:
        msg_id = message_id(recording_id, event_type)
        key = delivery_key(subscription.id, msg_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(
                key,
                mapping={
                    "subscription_id": subscription.id,
                    "recording_id": recording_id,
                    "type": event_type,
                    "msg_id": msg_id,
                    "body": body,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": time.time(),
                },
            )
            pipe.zrem(failed_key(subscription.id), key)
            pipe.zadd(outbox_key(subscription.id, recording_id), {msg_id: _place(event_type)})
            pipe.zadd(DUE_KEY, {due_member(subscription.id, msg_id): int(time.time() * 1000)})
            await pipe.execute()

    async def attempts(
        self, key: str, skip_newest: int = 0, limit: int = -1
    ) -> tuple[list[dict[str, Any]], int]:
        """An attempt log, oldest first: all of it, or the `limit` attempts before the
        `skip_newest` newest; and how many it holds."""
        stop = -1 - skip_newest
        start = 0 if limit < 0 else stop - limit + 1  # Redis clamps a start before the head
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrange(key, start, stop)
            pipe.llen(key)
            raw, total = await pipe.execute()
        return [json.loads(item) for item in raw], int(total)

    async def forget(self, subscription_id: str) -> None:
        """Delete what the relay keeps about a deleted subscription's deliveries."""
        await self.redis.delete(
            attempts_key(subscription_id),
            failed_key(subscription_id),
            failing_since_key(subscription_id),
        )

    async def failed_since(self, subscription_id: str, since: float) -> list[dict[str, str]]:
        keys = await self.redis.zrangebyscore(failed_key(subscription_id), since, "+inf")
        found = []
        for key in keys:
            raw = await self.redis.hgetall(key)  # type: ignore[misc]
            if raw:
                found.append({k.decode(): v.decode() for k, v in raw.items()})
        return found
