"""Keys the relay makes for itself and keeps in Redis, shared by every process.

- `media`: signs media links when `MEDIA_SIGNING_KEY` is unset.

Each is 32 random bytes, made by whichever process needs it first (`SET NX`), so that it is
independent of the admin tokens: rotating them ends none of the media links handed out.
Deleting a key from Redis (`rr:keyring:{name}`) rotates it.
"""

from __future__ import annotations

import secrets

from redis.asyncio import Redis

from service.storage import keys


class Keyring:
    """Keys the relay makes for itself and keeps in Redis (the media links' key)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._known: dict[str, bytes] = {}

    async def key(self, name: str) -> bytes:
        """The key `name`, made now if no process has made it yet."""
        known = self._known.get(name)
        if known is None:
            await self.redis.set(keys.keyring(name), secrets.token_bytes(32), nx=True)
            known = await self.redis.get(keys.keyring(name))
            assert known is not None
            self._known[name] = known
        return known
