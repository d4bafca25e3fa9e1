"""Deliveries: the delivery queue, both halves, around one task (`Claimed`).

A delivery is one event for one subscription. Webhooks do not go through arq: a webhook is one
HTTP request, and arq's bookkeeping per job costs as much as the request. Instead:

- The producer (`Deliveries`): `fan_out` queues an event for every subscription that wants it;
  each delivery (`rr:delivery:{subscription}:{message}`) holds the exact body to send, and its
  message id (`webhook-id`) is derived from the recording and the event type, so every retry
  and every replay carries the same one. A recording's pending messages for a subscriber wait
  in its outbox, scored by their event's place in a recording's life: only the first is sent,
  so `recording.completed` arrives before `recording.transcribed`, replays and recoveries too.
- The consumer (`DeliveryQueue`): `claim` takes up to N due deliveries in one step (the
  `claim` script), skipping and putting off what must wait: a message whose recording has an
  earlier one still pending for that subscriber, and a subscriber whose in-flight slots
  (`DELIVERY_MAX_IN_FLIGHT`, each until its lease lapses) are full; those wait, and each freed
  slot makes the longest-waiting one due at once. `settle` records an attempt's outcome in one
  step (the `settle` script): the attempt logs, the delivery's status, the slot and lease given
  back, the next message and a waiting delivery made due. A worker that dies mid-attempt
  leaves its lease to lapse; the delivery is then due again (at least once, never dropped).

A delivery that succeeded is deleted when settled (the attempt logs keep its outcome); one
that failed is kept for recover, without its body (replay and recover read bodies from the
archive). Deleting a subscription deletes its attempt log, failed list and failing-since mark
(`forget`); deliveries still queued for it are dropped when they come due.

The scripts derive keys from what they read (a delivery's outbox, its subscriber's slots), so
they need a single Redis, not a cluster (as arq does). Keys: `service.storage.keys`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.events import EVENT_TYPES
from service.storage import keys as keys_
from service.storage import lua
from service.storage.server import refuses_writes
from service.storage.subscriptions import SubscriptionStore
from service.subscriptions import Subscription

# What an attempt's record holds when it is left out (it is kept without its empty fields: two
# logs hold every attempt for RECORDING_RETENTION_DAYS, bench/memory).
ATTEMPT_DEFAULTS: dict[str, Any] = {"status_code": None, "error": None, "response_body": ""}


def encode_attempt(attempt: dict[str, Any]) -> str:
    kept = {k: v for k, v in attempt.items() if v is not None and v != ""}
    return json.dumps(kept, separators=(",", ":"))


def decode_attempt(raw: str | bytes) -> dict[str, Any]:
    return {**ATTEMPT_DEFAULTS, **json.loads(raw)}


def message_id(recording_id: str, event_type: str) -> str:
    digest = hashlib.sha256(f"{recording_id}\n{event_type}".encode()).hexdigest()
    return f"msg_{digest[:26]}"


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
        key = keys_.delivery(subscription.id, msg_id)
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
            pipe.zrem(keys_.failed(subscription.id), key)
            pipe.zadd(keys_.outbox(subscription.id, recording_id), {msg_id: _place(event_type)})
            pipe.zadd(
                keys_.DUE, {keys_.due_member(subscription.id, msg_id): int(time.time() * 1000)}
            )
            pipe.publish(keys_.WAKE_DELIVERIES, 1)
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
        return [decode_attempt(item) for item in raw], int(total)

    async def forget(self, subscription_id: str) -> None:
        """Delete what the relay keeps about a deleted subscription's deliveries."""
        await self.redis.delete(
            keys_.attempts(subscription_id),
            keys_.failed(subscription_id),
            keys_.failing_since(subscription_id),
        )

    async def attempts_of(
        self, subscription_id: str, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """The subscription's newest `limit` attempts, oldest first, and how many are kept."""
        return await self.attempts(keys_.attempts(subscription_id), limit=limit)

    async def failing_since(self, subscription_id: str) -> float | None:
        """When the subscriber's current run of failures began (None: its last attempt
        succeeded, or it has had none)."""
        raw = await self.redis.get(keys_.failing_since(subscription_id))
        return float(raw) if raw is not None else None

    async def depths(self, subscription_ids: list[str]) -> tuple[dict[str, int], dict[str, int]]:
        """How many webhooks are due now, in flight, and waiting for one of their
        subscriber's slots; and how many of each subscriber's wait."""
        now_ms = int(time.time() * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(keys_.DUE, "-inf", now_ms)
            pipe.zcard(keys_.LEASED)
            for subscription_id in subscription_ids:
                pipe.zcard(keys_.WAITING_PREFIX + subscription_id)
            due, leased, *waiting = await pipe.execute()
        found = {"webhooks_due": int(due), "webhooks_in_flight": int(leased)}
        found["webhooks_waiting"] = sum(int(w) for w in waiting)
        by_subscriber = {s: int(w) for s, w in zip(subscription_ids, waiting, strict=True)}
        return found, by_subscriber

    async def oldest_due(self, now: float) -> float | None:
        """How long (seconds) the longest-due webhook has waited to be sent; None if none is
        due."""
        first = await self.redis.zrangebyscore(keys_.DUE, "-inf", int(now * 1000), 0, 1, True)
        return round(now - first[0][1] / 1000, 3) if first else None

    async def failed_since(self, subscription_id: str, since: float) -> list[dict[str, str]]:
        keys = await self.redis.zrangebyscore(keys_.failed(subscription_id), since, "+inf")
        found = []
        for key in keys:
            raw = await self.redis.hgetall(key)  # type: ignore[misc]
            if raw:
                found.append({k.decode(): v.decode() for k, v in raw.items()})
        return found


ATTEMPT_LOG_MAX = 1000
CLAIM_PREFIXES = (
    keys_.DELIVERY_PREFIX,
    keys_.OUTBOX_PREFIX,
    keys_.SLOTS_PREFIX,
    keys_.WAITING_PREFIX,
)
SETTLE_PREFIXES = (keys_.OUTBOX_PREFIX, keys_.SLOTS_PREFIX, keys_.WAITING_PREFIX)

CLAIM = lua.source("claim")  # what is due, taken in one step
SETTLE = lua.source("settle")  # an attempt's outcome, recorded in one step


@dataclass(frozen=True)
class Claimed:
    """A delivery a worker has taken (its lease and slot) and must now attempt and settle."""

    subscription_id: str
    msg_id: str
    recording_id: str
    body: str
    type: str
    attempts: int  # made before this one
    subscription: str  # the subscription's JSON ("" if it was deleted)
    claimed_at: float  # epoch seconds; the lease lapses `lease` seconds later
    queued_at: float = 0.0  # epoch seconds: when the event was queued for this subscriber

    @property
    def member(self) -> str:
        return keys_.due_member(self.subscription_id, self.msg_id)


@dataclass(frozen=True)
class Claims:
    """What one `claim` took, and when the queue next has something to do (epoch seconds:
    a delivery comes due or a lease lapses; None if the queue is empty)."""

    taken: list[Claimed]
    next_due: float | None


class DeliveryQueue:
    def __init__(
        self, redis: Redis, slots: int, lease: float, retention: int, put_off: float = 60.0
    ) -> None:
        self.redis = redis
        self.retention = retention  # seconds a settled delivery is kept (for recover)
        self.slots = slots  # attempts in flight to one subscriber, at most
        self.lease_ms = int(lease * 1000)  # an attempt's timeout and then some
        self.put_off_ms = int(put_off * 1000)  # when a delivery that must wait looks again
        self._claim = redis.register_script(CLAIM)
        self._settle = redis.register_script(SETTLE)

    async def claim(self, limit: int) -> Claims:
        now = int(time.time() * 1000)
        keys = [keys_.DUE, keys_.LEASED, keys_.SUBSCRIPTIONS]
        next_due, *rows = await self._claim(
            keys,
            [now, limit, self.lease_ms, self.slots, self.put_off_ms, *CLAIM_PREFIXES],
        )
        claimed = []
        for member, recording_id, body, kind, attempts, subscription, queued_at in rows:
            subscription_id, _, msg_id = member.decode().partition(":")
            claimed.append(
                Claimed(
                    subscription_id=subscription_id,
                    msg_id=msg_id,
                    recording_id=recording_id.decode(),
                    body=body.decode(),
                    type=kind.decode(),
                    attempts=int(attempts),
                    subscription=subscription.decode(),
                    claimed_at=now / 1000,
                    queued_at=float(queued_at),
                )
            )
        return Claims(claimed, next_due / 1000 if next_due else None)

    async def settle(
        self,
        claimed: Claimed,
        outcome: str,
        attempt: dict[str, Any],
        error: str | None = None,
        retry_in: float = 0.0,
        counts: bool = False,
    ) -> None:
        """Record `attempt`; `outcome` is `succeeded`, `failed`, `retry` (in `retry_in` s) or
        `dropped` (its subscription is deleted: nothing is recorded). `counts`: the subscriber
        failed (towards `DELIVERY_DISABLE_AFTER`)."""
        now = int(time.time() * 1000)
        keys = [
            keys_.DUE,
            keys_.LEASED,
            keys_.delivery(claimed.subscription_id, claimed.msg_id),
            keys_.attempts(claimed.subscription_id),
            keys_.recording_attempts(claimed.recording_id),
            keys_.failed(claimed.subscription_id),
            keys_.failing_since(claimed.subscription_id),
            keys_.SUBSCRIPTIONS,
        ]
        args: list[str | int] = [
            claimed.member,
            outcome,
            now,
            now + int(retry_in * 1000),
            error or "",
            encode_attempt(attempt),
            ATTEMPT_LOG_MAX,
            self.retention,
            "1" if counts else "0",
            *SETTLE_PREFIXES,
        ]
        deadline = claimed.claimed_at + self.lease_ms / 1000 - 1
        delay = 0.1
        while True:  # Redis may be restarting or full: settle once it is back, not send twice
            try:
                await self._settle(keys, args)
                return
            except (RedisConnectionError, RedisTimeoutError, ResponseError) as error:
                if isinstance(error, ResponseError) and not refuses_writes(error):
                    raise
                if time.time() + delay > deadline:
                    raise  # the lease lapses: the delivery is attempted again
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
