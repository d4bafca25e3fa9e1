"""Plivo's API limit (300 requests per 5 s per account), shared by every worker process.

A sliding log in Redis: one sorted set per account holding the times of the requests of the
last window. Taking a slot is one atomic script: it either records the request or says how long
to wait for the oldest one to leave the window. Every process sees the same count, so however
many workers run, the account stays under the limit. Requests that left the window are trimmed
one call in `TRIM_EVERY` (they are no longer counted anyway), and the slots a process asks for
at the same moment are taken together (`service.storage.batch`): a call costs three Redis
commands, however many slots it takes.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Protocol

from redis.asyncio import Redis

from service.storage import keys, lua
from service.storage.batch import Batcher

TAKE = lua.source("take_rate_slot")  # scripts/take_rate_slot.lua
TRIM_EVERY = 16


class Limiter(Protocol):
    """Anything that makes a request wait for its share of Plivo's rate limit."""

    async def acquire(self, account: str) -> None:
        """Wait until `account` may make one more request, and count it."""


class RateLimiter:
    """Plivo's rate limit per account, shared by every process through Redis."""

    # A request is counted here when sent and at Plivo when it arrives; the window is held a
    # little longer than Plivo's so that delays on the way cannot crowd one request too many
    # into it (bench/pipeline saw 429s with 20 ms under load; none with 100 ms).
    MARGIN = 0.1

    def __init__(self, redis: Redis, limit: int, window: float, work: str | None = None) -> None:
        self.redis = redis
        self.limit = limit
        self.window = window + self.MARGIN
        self.work = work
        self._script = redis.register_script(TAKE)
        self._taking: Batcher[str, float] = Batcher(self._take)

    def share(self, work: str, fraction: float) -> SharedLimit:
        """A limiter for one kind of work (`work`) that takes at most `fraction` of this one's
        requests, each counted here too: however busy that work, the rest keep their share."""
        own = RateLimiter(self.redis, max(1, int(self.limit * fraction)), self.window, work)
        own.window = self.window  # the margin is in already
        return SharedLimit(own, self)

    async def acquire(self, account: str) -> None:
        """Wait until `account` may make one more request, and count it."""
        while True:
            wait = await self._taking(account)
            if wait <= 0:
                return
            await asyncio.sleep(wait + 0.001)

    async def _take(self, accounts: list[str]) -> list[float]:
        """For each ask (an account's name), 0 if its slot is taken, else how long to wait."""
        answers = [0.0] * len(accounts)
        for account in dict.fromkeys(accounts):
            asks = [n for n, a in enumerate(accounts) if a == account]
            key = (
                keys.plivo_rate(account)
                if self.work is None
                else keys.plivo_rate_share(account, self.work)
            )
            taken, wait = await self._script(
                keys=[key],
                args=[
                    time.time(),
                    self.window,
                    self.limit,
                    len(asks),
                    uuid.uuid4().hex,
                    "1" if random.randrange(TRIM_EVERY) == 0 else "0",
                ],
            )
            for n in asks[int(taken) :]:
                answers[n] = float(wait)
        return answers


class SharedLimit:
    """A share of an account's limit: a slot of its own first, then one of the whole."""

    def __init__(self, own: RateLimiter, whole: RateLimiter) -> None:
        self.own = own
        self.whole = whole

    async def acquire(self, account: str) -> None:
        await self.own.acquire(account)
        await self.whole.acquire(account)
