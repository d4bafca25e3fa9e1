"""The delivery queue: which webhook attempts are due, who is sending them, and their slots.

Deliveries do not go through arq: a webhook is one HTTP request, and arq's bookkeeping per
job costs as much as the request. Instead, in Redis:

- `rr:deliveries:due` (ZSET): `{subscription}:{message}` -> when its next attempt is due (ms).
- `rr:deliveries:leased` (ZSET): the same members, taken by a worker, -> when the lease lapses.
  A worker that dies mid-attempt leaves its lease to lapse; the delivery is then due again
  (at least once, never dropped).
- `rr:slots:{subscription}` (ZSET): the attempts in flight to that subscriber (at most
  `DELIVERY_MAX_IN_FLIGHT`), each until its lease lapses, so a slow or hanging one cannot hold
  every worker. `rr:waiting:{subscription}`: deliveries that found its slots full; each freed
  slot makes the longest-waiting one due at once.

`CLAIM` takes up to N due deliveries in one step, skipping (and putting off) what must wait:
a message whose recording has an earlier one still pending for that subscriber (the outbox
head goes first; its settling makes the next one due) and a subscriber whose slots are full.
`SETTLE` records an attempt's outcome in one step: the attempt log, the delivery's status,
the slot and lease given back, the next message and a waiting delivery made due. Everything
a step touches changes together, so no wake-up is lost between two workers.

Both scripts name keys they derive from the delivery (its outbox, its subscriber's slots), so
they need a single Redis, not a cluster (as arq does).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.deliveries import (
    DUE_KEY,
    LEASED_KEY,
    attempts_key,
    delivery_key,
    due_member,
    failed_key,
    failing_since_key,
    recording_attempts_key,
)
from service.subscriptions import KEY as SUBSCRIPTIONS_KEY

ATTEMPT_LOG_MAX = 1000

# KEYS: due, leased, subscriptions. ARGV: now (ms), limit, lease (ms), slots per subscriber,
# put-off (ms). Returns [member, recording_id, body, type, attempts, subscription JSON] each.
CLAIM = """
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local lease, capacity, put_off = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZADD', KEYS[1], now, member)
end
local claimed = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit * 4)
for _, member in ipairs(due) do
  if #claimed >= limit then break end
  local colon = string.find(member, ':', 1, true)
  local sub_id, msg_id = string.sub(member, 1, colon - 1), string.sub(member, colon + 1)
  local d = redis.call('HMGET', 'rr:delivery:' .. member,
                       'status', 'recording_id', 'body', 'type', 'attempts')
  if d[1] ~= 'pending' then
    redis.call('ZREM', KEYS[1], member)
  else
    local head = redis.call('ZRANGE', 'rr:outbox:' .. sub_id .. ':' .. d[2], 0, 0)[1]
    local slots, waiting = 'rr:slots:' .. sub_id, 'rr:waiting:' .. sub_id
    redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
    if head and head ~= msg_id then
      redis.call('ZADD', KEYS[1], now + put_off, member)
    elseif redis.call('ZCARD', slots) >= capacity then
      redis.call('ZADD', waiting, 'NX', now, member)
      redis.call('ZADD', KEYS[1], now + put_off, member)
    else
      redis.call('ZADD', slots, now + lease, member)
      redis.call('ZREM', waiting, member)
      redis.call('ZREM', KEYS[1], member)
      redis.call('ZADD', KEYS[2], now + lease, member)
      local subscription = redis.call('HGET', KEYS[3], sub_id) or ''
      claimed[#claimed + 1] = {member, d[2], d[3], d[4], d[5] or '0', subscription}
    end
  end
end
return claimed
"""

# KEYS: due, leased, delivery, subscriber's attempt log, recording's attempt log, failed,
# failing-since, subscriptions. ARGV: member, outcome (succeeded | failed | retry | dropped),
# now (ms), retry at (ms), error, attempt (JSON), log length, retention (s), "1" if the attempt
# was a failure of the subscriber's (it starts a run of failures, if none is running). A
# delivery that succeeded is deleted (the attempt logs keep its outcome); one that failed is
# kept, without its body (in the archive), for recover, as long as the recording's state, and
# so are the recording's attempt log and the failed list.
# A delivery whose subscription is gone (deleted, perhaps while this attempt was in flight) is
# dropped: nothing is kept, so nothing of a deleted subscription comes back. Returns 2 then.
SETTLE = """
local member, outcome, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local colon = string.find(member, ':', 1, true)
local sub_id, msg_id = string.sub(member, 1, colon - 1), string.sub(member, colon + 1)
redis.call('ZREM', KEYS[2], member)
redis.call('ZREM', 'rr:slots:' .. sub_id, member)
local woken = redis.call('ZPOPMIN', 'rr:waiting:' .. sub_id)
if woken[1] then redis.call('ZADD', KEYS[1], now, woken[1]) end
if outcome == 'dropped' or redis.call('HEXISTS', KEYS[8], sub_id) == 0 then
  local recording = redis.call('HGET', KEYS[3], 'recording_id')
  redis.call('DEL', KEYS[3])
  if recording then
    local outbox = 'rr:outbox:' .. sub_id .. ':' .. recording
    redis.call('ZREM', outbox, msg_id)
    local following = redis.call('ZRANGE', outbox, 0, 0)[1]
    if following then redis.call('ZADD', KEYS[1], now, sub_id .. ':' .. following) end
  end
  return 2
end
local retention = tonumber(ARGV[8])
for _, log in ipairs({KEYS[4], KEYS[5]}) do
  redis.call('RPUSH', log, ARGV[6])
  redis.call('LTRIM', log, -tonumber(ARGV[7]), -1)
end
redis.call('EXPIRE', KEYS[5], retention)
redis.call('HINCRBY', KEYS[3], 'attempts', 1)
if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], 'last_error', ARGV[5]) end
if ARGV[9] == '1' then redis.call('SET', KEYS[7], now / 1000, 'NX') end
if outcome == 'retry' then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[4]), member)
  return 0
end
local recording = redis.call('HGET', KEYS[3], 'recording_id')
if outcome == 'succeeded' then
  -- Delivered: the attempt logs say so, and nothing else needs the delivery any more.
  redis.call('DEL', KEYS[3], KEYS[7])
else
  redis.call('HSET', KEYS[3], 'status', outcome, 'finished_at', now / 1000)
  redis.call('EXPIRE', KEYS[3], retention)
  -- A recording event's body is in the archive, where recover reads it.
  if string.sub(redis.call('HGET', KEYS[3], 'type') or '', 1, 10) == 'recording.' then
    redis.call('HDEL', KEYS[3], 'body')
  end
  redis.call('ZADD', KEYS[6], now / 1000, KEYS[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now / 1000 - retention)
end
local outbox = 'rr:outbox:' .. sub_id .. ':' .. recording
redis.call('ZREM', outbox, msg_id)
local following = redis.call('ZRANGE', outbox, 0, 0)[1]
if following then redis.call('ZADD', KEYS[1], now, sub_id .. ':' .. following) end
return 1
"""


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

    @property
    def member(self) -> str:
        return due_member(self.subscription_id, self.msg_id)


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

    async def claim(self, limit: int) -> list[Claimed]:
        now = int(time.time() * 1000)
        keys = [DUE_KEY, LEASED_KEY, SUBSCRIPTIONS_KEY]
        rows = await self._claim(keys, [now, limit, self.lease_ms, self.slots, self.put_off_ms])
        claimed = []
        for member, recording_id, body, kind, attempts, subscription in rows:
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
                )
            )
        return claimed

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
            DUE_KEY,
            LEASED_KEY,
            delivery_key(claimed.subscription_id, claimed.msg_id),
            attempts_key(claimed.subscription_id),
            recording_attempts_key(claimed.recording_id),
            failed_key(claimed.subscription_id),
            failing_since_key(claimed.subscription_id),
            SUBSCRIPTIONS_KEY,
        ]
        args: list[str | int] = [
            claimed.member,
            outcome,
            now,
            now + int(retry_in * 1000),
            error or "",
            json.dumps(attempt),
            ATTEMPT_LOG_MAX,
            self.retention,
            "1" if counts else "0",
        ]
        deadline = claimed.claimed_at + self.lease_ms / 1000 - 1
        delay = 0.1
        while True:  # Redis may be restarting: settle once it is back, not send twice
            try:
                await self._settle(keys, args)
                return
            except (RedisConnectionError, RedisTimeoutError):
                if time.time() + delay > deadline:
                    raise  # the lease lapses: the delivery is attempted again
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
