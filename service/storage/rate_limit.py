"""Plivo's API limit (300 requests per 5 s per account), shared by every worker process.

A sliding log in Redis: one sorted set per account holding the times of the requests of the
last window. Taking a slot is one atomic script: it either records the request or says how long
to wait for the oldest one to leave the window. Every process sees the same count, so however
many workers run, the account stays under the limit.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from redis.asyncio import Redis

from service.storage import keys, lua

TAKE = lua.source("take_rate_slot")  # scripts/take_rate_slot.lua


class RateLimiter:
    # A request is counted here when sent and at Plivo when it arrives; the window is held a
    # little longer than Plivo's so that delays on the way cannot crowd one request too many
    # into it (bench/pipeline saw 429s with 20 ms under load; none with 100 ms).
    MARGIN = 0.1

    def __init__(self, redis: Redis, limit: int, window: float) -> None:
        self.redis = redis
        self.limit = limit
        self.window = window + self.MARGIN
        self._take = redis.register_script(TAKE)

    async def acquire(self, account: str) -> None:
        """Wait until `account` may make one more request, and count it."""
        while True:
            wait = float(
                await self._take(
                    keys=[keys.plivo_rate(account)],
                    args=[time.time(), self.window, self.limit, uuid.uuid4().hex],
                )
            )
            if wait <= 0:
                return
            await asyncio.sleep(wait + 0.001)
