"""A Lua script called over a connection of its own, its commands packed by hand.

redis-py spends most of its per-call CPU packing arguments one by one and checking a pooled
connection out and back in. The ingestion path calls one script with hundreds of arguments per
batch (`service.storage.batch`), one batch at a time, so it keeps one connection and writes the RESP
bytes itself. Everything else uses redis-py as usual.

The connection is taken from the client's pool when first needed and kept until `aclose`, so
it counts against the process's `REDIS_MAX_CONNECTIONS` (`service.storage.connections`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError, NoScriptError, TimeoutError

Arg = str | int | bytes


def pack(*parts: Arg) -> bytes:
    """One command in RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(out)


class Script:
    """A Lua script run by its SHA on one held connection, loaded again when Redis forgot it."""

    def __init__(self, redis: Redis, source: str) -> None:
        self.redis = redis
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._connection: AbstractConnection | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, keys: Sequence[Arg], args: Sequence[Arg]) -> object:
        command = pack("EVALSHA", self.sha, len(keys), *keys, *args)
        async with self._lock:
            try:
                return await self._run(command)
            except NoScriptError:
                # Redis lost its script cache (it restarted): load the script, then run again.
                await self.redis.script_load(self.source)
                return await self._run(command)

    async def _run(self, command: bytes) -> object:
        if self._connection is None:
            self._connection = await self.redis.connection_pool.get_connection()
        for attempt in (1, 2):
            try:
                await self._connection.send_packed_command(command, check_health=False)
                return await self._connection.read_response()
            except (ConnectionError, TimeoutError, OSError):
                await self._connection.disconnect()
                # A link dropped while idle fails at once on the first write: reconnect and try
                # once more. The accept script is written to be safe to run twice.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.disconnect()
            await self.redis.connection_pool.release(self._connection)
            self._connection = None
