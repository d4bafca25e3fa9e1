"""In-flight slots: at most N webhook attempts to one subscriber at once, across all workers.

A delivery takes a slot before its attempt and gives it back after. One that finds every slot
taken *parks*: it is noted in the subscriber's waiting set and its job is deferred for long
(`fallback`); whoever gives a slot back wakes the longest-waiting one. So a hanging subscriber
with a backlog costs one job run per freed slot, not a busy loop of retries, and the other
subscribers' deliveries keep the workers.

A slot is held until a deadline (the attempt's timeout plus a margin), so one held by a worker
that died lapses by itself. Taking, parking and giving back are each one Lua script, so a slot
freed while a delivery parks is never missed.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

# KEYS: slots, waiting. ARGV: capacity, now, hold until, member.
ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) or redis.call('ZSCORE', KEYS[1], ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
  redis.call('ZREM', KEYS[2], ARGV[4])
  return 1
end
redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[4])
return 0
"""
# KEYS: slots, waiting. ARGV: member. Returns the woken member, if any.
RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
local woken = redis.call('ZPOPMIN', KEYS[2])
return woken[1]
"""


def slots_key(subscription_id: str) -> str:
    return f"rr:slots:{subscription_id}"


def waiting_key(subscription_id: str) -> str:
    return f"rr:waiting:{subscription_id}"


class Slots:
    def __init__(self, redis: Redis, capacity: int, hold: float) -> None:
        self.capacity = capacity
        self.hold = hold  # seconds a slot is held at most
        self._acquire = redis.register_script(ACQUIRE)
        self._release = redis.register_script(RELEASE)

    async def acquire(self, subscription_id: str, member: str) -> bool:
        """Take a slot for `member`, or park it among the waiting and return False."""
        now = time.time()
        keys = [slots_key(subscription_id), waiting_key(subscription_id)]
        taken = await self._acquire(keys, [self.capacity, now, now + self.hold, member])
        return bool(taken)

    async def release(self, subscription_id: str, member: str) -> str | None:
        """Give `member`'s slot back; the parked member to wake now, if any."""
        keys = [slots_key(subscription_id), waiting_key(subscription_id)]
        woken = await self._release(keys, [member])
        return woken.decode() if woken is not None else None
