"""Deliveries: the delivery queue, both halves, around one task (`Claimed`).

A delivery is one event for one subscription. Webhooks do not go through arq: a webhook is one
HTTP request, and arq's bookkeeping per job costs as much as the request. What Redis keeps of
a delivery is small, and what is large is kept once (keys: `service.storage.keys`):

- Each event's body is kept once (`rr:body:{recording}:{event}`) with a count of the
  deliveries still to settle, however many subscribers it goes to; the last to settle deletes
  it. Its message id (`webhook-id`) is derived from the recording and the event type, so every
  retry and every replay carries the same one.
- Per subscription, one hash field per recording it still has events of (`rr:pending:{sub}`):
  those events in the order of the recording's life, one letter each, the head first. Only the
  head is ever sent, so `recording.completed` arrives before `recording.transcribed`, replays
  and recoveries too. A head not in flight waits in the subscription's queue (`rr:queue:{sub}`,
  by due time), and the subscription waits in `rr:deliveries:due` (by when to look at it).

The producer (`Deliveries.fan_out`) queues an event for every subscription that wants it and,
for one with a free slot and nothing earlier of the recording pending, hands the delivery
straight back to the caller (a worker, which attempts it at once: no claim, no wake-up). The
consumer (`DeliveryQueue`): `claim` takes due deliveries in one step (`scripts/claim.lua`),
leaving a subscription whose in-flight slots (`DELIVERY_MAX_IN_FLIGHT`) are full to wait;
`settle` records attempts' outcomes in one step (`scripts/settle.lua`): the attempt logs, the
next event of the recording made due, the slot given back, the body released.

A worker holds what it attempts under its name (the head's `@<worker>`), not a lease per
delivery: a worker that dies stops its heartbeat (`service.storage.heartbeats`), and once that
has lapsed (`DELIVERY_TIMEOUT` + 10 s, at least three beats) the next claim anywhere names it
and what it held is released, due again (at least once, never dropped); a worker that stops
releases what it cut short itself. Deleting a subscription drops what it had queued at once.

Attempt logs: each subscription keeps its last `WINDOW` attempts in Redis (the dashboard's and
the API's); each attempt also goes, a few seconds later, to its recording's `attempts.json` in
the archive (`AttemptsLog`, moved by `workers.attempts_archive`). A delivery that failed for
good is listed for recover (`rr:failed:{sub}`); its body is read from the archive.

The scripts derive keys from what they read (a subscription's pending and queue keys, an
event's body), so they need a single Redis, not a cluster (as arq does).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.domain.attempts import Attempt, Outcome
from service.domain.events import ARCHIVED, COMPLETED, ERASED, FAILED, TRANSCRIBED
from service.domain.subscriptions import OPERATIONAL, Subscription
from service.storage import keys as keys_
from service.storage import lua
from service.storage.batch import Batcher
from service.storage.server import refuses_writes
from service.storage.subscriptions import SubscriptionStore

log = logging.getLogger("recording_relay.deliveries")

# Each event type as one letter in the pending lists and body keys.
CODES: dict[str, str] = {
    COMPLETED: "c",
    TRANSCRIBED: "t",
    FAILED: "f",
    ARCHIVED: "a",
    ERASED: "e",
    OPERATIONAL: "d",
}
ERASED_CODE = CODES[ERASED]
TYPES = {code: kind for kind, code in CODES.items()}
WINDOW = 100  # attempts each subscription keeps in Redis (it may hold up to a fifth more)
ARCHIVE_EVERY = 5.0  # seconds between moves of attempts to the archive, at most
PUT_OFF = 60.0  # seconds before a subscription with full slots is looked at again, at most


FAN_OUT = lua.source("fan_out")
CLAIM = lua.source("claim")
SETTLE = lua.source("settle")
DROP = lua.source("drop_subscription")
RELEASE = lua.source("release_held")


def message_id(recording_id: str, event_type: str) -> str:
    digest = hashlib.sha256(f"{recording_id}\n{event_type}".encode()).hexdigest()
    return f"msg_{digest[:26]}"


def encode_attempt(attempt: dict[str, Any], leave_out: str) -> str:
    """An attempt as a log keeps it: compact, without empty fields, without `leave_out`
    (`subscription_id` in a subscription's window) and without its message id (derived from
    the recording and the type)."""
    kept = {
        k: v
        for k, v in attempt.items()
        if v is not None and v != "" and k not in (leave_out, "msg_id")
    }
    return json.dumps(kept, separators=(",", ":"))


def decode_attempt(raw: str | bytes | dict[str, Any], **known: str) -> Attempt:
    """An attempt from a log's record and what the log says (`known`). Each log keeps attempts
    without their empty fields and without what the log itself says (its subscription, or its
    recording)."""
    record = raw if isinstance(raw, dict) else json.loads(raw)
    attempt = {**known, **record}
    if "recording_id" in attempt and "type" in attempt:
        attempt["msg_id"] = message_id(attempt["recording_id"], attempt["type"])
    return Attempt.model_validate(attempt)


@dataclass(frozen=True)
class Claimed:
    """A delivery a worker has taken (it holds it, and a slot) and must attempt and settle."""

    subscription_id: str
    recording_id: str
    type: str
    attempts: int  # made before this one
    body: str  # '' if Redis no longer has it
    subscription: str  # the subscription's JSON ("" if it was deleted)
    claimed_at: float  # epoch seconds
    queued_at: float = 0.0  # epoch seconds: when the event was queued
    day: str = ""  # the recording's archive day (`2026/11/25`), where its attempts go

    @property
    def msg_id(self) -> str:
        return message_id(self.recording_id, self.type)


@dataclass(frozen=True)
class Claims:
    """What one `claim` took, and when the queue next has something to do (epoch seconds: a
    delivery comes due; None if nothing is queued)."""

    taken: list[Claimed]
    next_due: float | None


@dataclass(frozen=True)
class FannedOut:
    """What `fan_out` did: how many subscriptions the event went to, and those handed back to
    the caller to attempt now (it holds them)."""

    subscriptions: int
    handed: list[Claimed]


class Deliveries:
    """The producer (`fan_out`), and what the API and the dashboard read of deliveries."""

    def __init__(self, redis: Redis, subscriptions: SubscriptionStore, slots: int = 4) -> None:
        self.redis = redis
        self.subscriptions = subscriptions
        self.slots = slots  # attempts in flight to one subscriber, at most
        self._fan_out = redis.register_script(FAN_OUT)
        self._drop = redis.register_script(DROP)

    async def fan_out(
        self,
        recording_id: str,
        event_type: str,
        body: str,
        *,
        day: str = "",
        only: str | None = None,
        room: int = 0,
        holder: str = "",
        emitted: bool = False,
    ) -> FannedOut:
        """Queue `body` for every enabled subscription that wants `event_type` (or only `only`),
        re-queuing one already delivered (a replay, with the same message id). Up to `room` of
        them that can go now are handed back to be attempted at once, held by `holder` (the
        caller's name). `day`: the recording's archive day, where its attempts are written.
        `emitted`: also mark the event emitted on the recording, in the same step."""
        wanted = [
            s
            for s in await self.subscriptions.all()
            if (only is None or s.id == only) and s.wants(event_type)
        ]
        if any(s.filter for s in wanted):  # read the event only for a filter that asks
            event = json.loads(body)
            wanted = [s for s in wanted if s.accepts(event)]
        code = CODES[event_type]
        now = int(time.time() * 1000)
        handed = await self._fan_out(
            keys=[
                keys_.DUE,
                keys_.IN_FLIGHT,
                keys_.body(recording_id, code),
                keys_.recording(recording_id),
                keys_.SPACING,
            ],
            args=[
                now,
                recording_id,
                code,
                body,
                day,
                self.slots,
                room if holder else 0,
                holder,
                f"emitted:{event_type}" if emitted else "",
                keys_.WAKE_DELIVERIES,
                keys_.PENDING_PREFIX,
                keys_.QUEUE_PREFIX,
                *(s.id for s in wanted),
            ],
        )
        by_id = {s.id: s for s in wanted}
        taken = [
            Claimed(
                subscription_id=sub.decode(),
                recording_id=recording_id,
                type=event_type,
                attempts=0,
                body=body,
                subscription=by_id[sub.decode()].model_dump_json(),
                claimed_at=now / 1000,
                queued_at=now / 1000,
                day=day,
            )
            for sub in handed
        ]
        return FannedOut(len(wanted), taken)

    async def queue(
        self, subscription: Subscription, recording_id: str, event_type: str, body: str, day: str
    ) -> None:
        """Queue one event for one subscription (recover)."""
        await self.fan_out(recording_id, event_type, body, day=day, only=subscription.id)

    async def drop(self, subscription_id: str) -> None:
        """Forget a deleted subscription's deliveries at once: what it had queued, its attempt
        window and failed list (attempts in flight are dropped as they settle)."""
        await self._drop(
            keys=[
                keys_.DUE,
                keys_.IN_FLIGHT,
                keys_.pending(subscription_id),
                keys_.queue(subscription_id),
                keys_.attempts(subscription_id),
                keys_.failed(subscription_id),
            ],
            args=[subscription_id, keys_.BODY_PREFIX],
        )

    async def attempts(
        self, subscription_id: str, skip_newest: int = 0, limit: int = -1
    ) -> tuple[list[Attempt], int]:
        """A subscription's attempt window, oldest first: all of it, or the `limit` attempts
        before the `skip_newest` newest; and how many it holds."""
        key = keys_.attempts(subscription_id)
        stop = -1 - skip_newest
        start = 0 if limit < 0 else stop - limit + 1  # Redis clamps a start before the head
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrange(key, start, stop)
            pipe.llen(key)
            raw, total = await pipe.execute()
        return [decode_attempt(item, subscription_id=subscription_id) for item in raw], int(total)

    async def recording_attempts(self, recording_id: str) -> list[Attempt]:
        """The recording's attempts on their way to the archive (the last few seconds')."""
        raw = await self.redis.lrange(keys_.ATTEMPTS_TO_ARCHIVE, 0, -1)  # type: ignore[misc]
        records = [json.loads(item) for item in raw]
        return [decode_attempt(r) for r in records if r.get("recording_id") == recording_id]

    async def failing_since(self, subscription_id: str) -> float | None:
        """When the subscriber's current run of failures began (None: its last attempt
        succeeded, or it has had none)."""
        raw = await self.redis.hget(keys_.pending(subscription_id), "!")  # type: ignore[misc]
        return float(raw) if raw is not None else None

    async def depths(self, subscription_ids: list[str]) -> tuple[dict[str, int], dict[str, int]]:
        """How many webhooks are due now, in flight, and waiting (recordings a subscriber has
        events of yet to receive: queued behind a retry, an earlier event or full slots); and
        how many of each subscriber's wait."""
        now_ms = int(time.time() * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hvals(keys_.IN_FLIGHT)
            for subscription_id in subscription_ids:
                pipe.zcount(keys_.queue(subscription_id), "-inf", now_ms)
                pipe.hlen(keys_.pending(subscription_id))
                pipe.hexists(keys_.pending(subscription_id), "!")
            in_flight, *rows = await pipe.execute()
        due = sum(int(d) for d in rows[0::3])
        flying = sum(max(0, int(n)) for n in in_flight)
        waiting = [max(0, int(n) - int(f)) for n, f in zip(rows[1::3], rows[2::3], strict=True)]
        by_subscriber = dict(zip(subscription_ids, waiting, strict=True))
        found = {"webhooks_due": due, "webhooks_in_flight": flying}
        found["webhooks_waiting"] = max(0, sum(waiting) - flying)
        return found, by_subscriber

    async def oldest_due(self, now: float) -> float | None:
        """How long (seconds) the longest-due webhook that a worker could take now has waited;
        None if none is due."""
        first = await self.redis.zrangebyscore(keys_.DUE, "-inf", int(now * 1000), 0, 1, True)
        return round(now - first[0][1] / 1000, 3) if first else None

    async def failed_since(self, subscription_id: str, since: float) -> list[dict[str, str]]:
        """What failed for good for the subscription since `since` (epoch s): each delivery's
        `recording_id`, `type` and `failed_at`, and `body` where Redis keeps it (operational
        events, which no archive holds)."""
        rows = await self.redis.zrangebyscore(
            keys_.failed(subscription_id), since, "+inf", withscores=True
        )
        found = []
        for member, at in rows:
            recording_id, _, code = member.decode().rpartition(":")
            if code not in TYPES:
                continue
            item = {"recording_id": recording_id, "type": TYPES[code], "failed_at": str(at)}
            if code == CODES[OPERATIONAL]:
                body = await self.redis.hget(keys_.body(recording_id, code), "b")  # type: ignore[misc]
                if body is None:
                    continue
                item["body"] = body.decode()
            found.append(item)
        return found


CLAIM_PREFIXES = (keys_.PENDING_PREFIX, keys_.QUEUE_PREFIX, keys_.BODY_PREFIX)
SETTLE_PREFIXES = (
    keys_.PENDING_PREFIX,
    keys_.QUEUE_PREFIX,
    keys_.BODY_PREFIX,
    keys_.ATTEMPTS_PREFIX,
    keys_.FAILED_PREFIX,
)


@dataclass(frozen=True)
class Settling:
    """An attempt's outcome, as `settle` records it."""

    claimed: Claimed
    outcome: Outcome
    attempt: Attempt
    retry_in: float = 0.0
    counts: bool = False  # a failure of the subscriber's (towards DELIVERY_DISABLE_AFTER)
    chain: bool = True  # the caller takes the recording's next event for the subscriber


@dataclass(frozen=True)
class Next:
    """What settling an attempt led to: whether a delivery became due now (the caller looks
    at the queue again), and the recording's next event for the subscriber, which the caller
    takes at once in the slot the attempt freed (None if there is none)."""

    woke: bool
    then: Claimed | None = None


class DeliveryQueue:
    """The consumer: `claim` what is due, `settle` what was attempted, all as `holder` (this
    worker's name, as its heartbeat gives it)."""

    def __init__(
        self,
        redis: Redis,
        slots: int,
        holder: str,
        lapse: float,
        retention: int,
        put_off: float = PUT_OFF,
    ) -> None:
        self.redis = redis
        self.holder = holder
        self.lapse = lapse  # seconds without a heartbeat after which a worker is dead
        self.retention = retention  # seconds a failed delivery is listed for recover
        self.slots = slots  # attempts in flight to one subscriber, at most
        self.put_off_ms = int(put_off * 1000)  # when a subscription with full slots looks again
        self._claim = redis.register_script(CLAIM)
        self._settle = redis.register_script(SETTLE)
        self._release = redis.register_script(RELEASE)
        # Attempts that end together are settled together: one script call.
        self._settle_batch: Batcher[Settling, Next] = Batcher(self._settle_all)

    async def claim(self, limit: int) -> Claims:
        """Take up to `limit` due deliveries; release what a dead worker held, if any."""
        now = int(time.time() * 1000)
        next_due, dead, *rows = await self._claim(
            [
                keys_.DUE,
                keys_.IN_FLIGHT,
                keys_.SUBSCRIPTIONS,
                keys_.WORKERS,
                keys_.SPACING,
                keys_.PACE,
            ],
            [
                now,
                limit,
                self.slots,
                self.put_off_ms,
                *CLAIM_PREFIXES,
                self.holder,
                now / 1000 - self.lapse,
            ],
        )
        claimed = [
            Claimed(
                subscription_id=sub.decode(),
                recording_id=recording.decode(),
                type=TYPES[code.decode()],
                attempts=int(tries or 0),
                body=body.decode(),
                subscription=subscription.decode(),
                claimed_at=now / 1000,
                queued_at=float(queued_at),
                day=day.decode(),
            )
            for sub, recording, code, tries, body, queued_at, day, subscription in rows
        ]
        if dead:
            released = await self.release(dead.decode())
            log.warning(
                "worker %s stopped beating: %d webhook attempts it held are due again",
                dead.decode(),
                released,
            )
            next_due = now
        return Claims(claimed, next_due / 1000 if next_due else None)

    async def release(self, holder: str) -> int:
        """Make due again what `holder` held in flight, and forget it: a dead worker, or this
        one as it stops (what it cut short). How many."""
        released = await self._release(
            keys=[keys_.DUE, keys_.IN_FLIGHT, keys_.WORKERS],
            args=[int(time.time() * 1000), holder, keys_.PENDING_PREFIX, keys_.QUEUE_PREFIX],
        )
        return int(released)

    async def settle(
        self,
        claimed: Claimed,
        outcome: Outcome,
        attempt: Attempt,
        retry_in: float = 0.0,
        counts: bool = False,
        chain: bool = True,
    ) -> Next:
        """Record `attempt`; `outcome` is `succeeded`, `failed`, `retry` (in `retry_in` s) or
        `dropped` (its subscription is deleted: nothing is recorded). `counts`: the subscriber
        failed (towards `DELIVERY_DISABLE_AFTER`). `chain`: the caller takes the recording's
        next event for the subscriber, if there is one, at once."""
        recorded = Settling(claimed, outcome, attempt, retry_in, counts, chain)
        deadline = claimed.claimed_at + self.lapse - 1
        delay = 0.1
        while True:  # Redis may be restarting or full: settle once it is back, not send twice
            try:
                return await self._settle_batch(recorded)
            except (RedisConnectionError, RedisTimeoutError, ResponseError) as error:
                if isinstance(error, ResponseError) and not refuses_writes(error):
                    raise
                if time.time() + delay > deadline:
                    raise  # this worker's hold lapses: the delivery is attempted again
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _settle_all(self, outcomes: list[Settling]) -> list[Next]:
        now = int(time.time() * 1000)
        args: list[str | int | float] = [
            now,
            self.slots,
            WINDOW,
            self.retention,
            self.holder,
            *SETTLE_PREFIXES,
        ]
        for o in outcomes:
            c = o.claimed
            recorded = {**o.attempt.record(), "recording_id": c.recording_id, "type": c.type}
            archived = {**recorded, "subscription_id": c.subscription_id, "day": c.day}
            args += [
                c.subscription_id,
                c.recording_id,
                CODES[c.type],
                o.outcome,
                now + int(o.retry_in * 1000),
                encode_attempt(recorded, "subscription_id"),
                # Only a recording's events have an archive to go to.
                encode_attempt(archived, "") if c.day else "",
                "1" if o.counts else "0",
                "1" if o.chain else "0",
            ]
        keys = [keys_.DUE, keys_.IN_FLIGHT, keys_.ATTEMPTS_TO_ARCHIVE, keys_.SPACING]
        woke, *taken = await self._settle(keys, args)
        then: dict[int, Claimed] = {}
        for place, code, body, queued_at, day in taken:
            c = outcomes[int(place) - 1].claimed
            then[int(place) - 1] = Claimed(
                subscription_id=c.subscription_id,
                recording_id=c.recording_id,
                type=TYPES[code.decode()],
                attempts=0,
                body=body.decode(),
                subscription=c.subscription,
                claimed_at=now / 1000,
                queued_at=float(queued_at),
                day=day.decode(),
            )
        return [Next(bool(woke), then.get(n)) for n in range(len(outcomes))]


class AttemptsLog:
    """Attempts on their way to their recordings' `attempts.json` in the archive: one list,
    moved a batch at a time by whichever worker holds the lock (`take`, then `done`)."""

    def __init__(self, redis: Redis, lease: float = 60.0) -> None:
        self.redis = redis
        self.lease_ms = int(lease * 1000)  # a move cut short is taken up again after this

    async def take(self, holder: str, limit: int) -> list[dict[str, Any]] | None:
        """The oldest `limit` attempts, with the lock to move them (None: another worker is
        moving a batch now)."""
        if not await self.redis.set(keys_.ATTEMPTS_MOVING, holder, nx=True, px=self.lease_ms):
            return None
        raw = await self.redis.lrange(keys_.ATTEMPTS_TO_ARCHIVE, 0, limit - 1)  # type: ignore[misc]
        return [json.loads(item) for item in raw]

    async def done(self, moved: int) -> None:
        """The `moved` oldest attempts are in the archive: drop them, and the lock."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.ltrim(keys_.ATTEMPTS_TO_ARCHIVE, moved, -1)
            pipe.delete(keys_.ATTEMPTS_MOVING)
            await pipe.execute()

    async def waiting(self) -> int:
        return int(await self.redis.llen(keys_.ATTEMPTS_TO_ARCHIVE))  # type: ignore[misc]
