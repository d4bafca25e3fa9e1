"""Dashboard sessions and failed admin-token checks, kept in Redis.

Sessions: the browser holds only a random id (the cookie); the session itself (its CSRF token,
which admin token opened it, what a page shows once) is here, for `SESSION_HOURS` from the
login and not a second more: nothing a response carries extends it, logging out deletes it,
and retiring the admin token that opened it ends it.

Throttling: every failed check of an admin token (the dashboard's login, a bearer API call)
counts against its client address and against all addresses together, per minute; past
`AUTH_FAILURES_PER_ADDRESS` or `AUTH_FAILURES_IN_ALL` failures in the current minute, checks
are refused (429) before the token is even looked at, until the minute is over.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from redis.asyncio import Redis

from service.storage import keys

SESSION_HOURS = 8


class Sessions:
    """The dashboard's server-side sessions in Redis."""

    def __init__(self, redis: Redis, hours: float = SESSION_HOURS) -> None:
        self.redis = redis
        self.seconds = int(hours * 3600)

    async def open(self, data: dict[str, Any]) -> str:
        """A new session holding `data`; its id (the cookie's value)."""
        session_id = secrets.token_urlsafe(32)
        record = {"data": data, "until": time.time() + self.seconds}
        await self.redis.set(keys.session(session_id), json.dumps(record), ex=self.seconds)
        return session_id

    async def read(self, session_id: str) -> tuple[dict[str, Any], float] | None:
        """A session's data and when it ends (epoch s); None if there is none (ended, logged
        out, or never was)."""
        if not (0 < len(session_id) <= 64 and session_id.isascii()):
            return None
        raw = await self.redis.get(keys.session(session_id))
        if raw is None:
            return None
        record = json.loads(raw)
        return dict(record["data"]), float(record["until"])

    async def save(self, session_id: str, data: dict[str, Any], until: float) -> None:
        """Keep `data` for the session, which still ends when it was to."""
        record = json.dumps({"data": data, "until": until})
        left = int(until - time.time())
        if left > 0:
            await self.redis.set(keys.session(session_id), record, ex=left, xx=True)

    async def close(self, session_id: str) -> None:
        await self.redis.delete(keys.session(session_id))


class Throttle:
    """Counts failed token checks per address and in all, and says who must wait."""

    def __init__(self, redis: Redis, per_address: int = 10, in_all: int = 100) -> None:
        self.redis = redis
        self.per_address = per_address  # failed checks a client address may make a minute
        self.in_all = in_all  # failed checks all addresses together may make a minute

    async def refused(self, address: str) -> int | None:
        """Seconds until `address` may try again, if it has failed too often this minute."""
        minute = int(time.time() // 60)
        mine, everyone = await self.redis.mget(
            [keys.auth_failures(minute, address), keys.auth_failures(minute)]
        )
        if int(mine or 0) >= self.per_address or int(everyone or 0) >= self.in_all:
            return 60 - int(time.time()) % 60
        return None

    async def failed(self, address: str) -> None:
        """Count a failed check from `address`."""
        minute = int(time.time() // 60)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in (keys.auth_failures(minute, address), keys.auth_failures(minute)):
                pipe.incr(key)
                pipe.expire(key, 120)
            await pipe.execute()
