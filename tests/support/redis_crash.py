"""A loopback TCP proxy in front of a real Redis that plays Redis crashing right after a write.

`crash_after(*markers)`: the next command (or pipeline) sent through the proxy whose bytes
contain every marker reaches Redis and is applied, but its answer is lost (with
`applied=False` it never reaches Redis, as when Redis dies with it on the wire): every
connection through the proxy breaks at once, and for `down_for` seconds the proxy takes no
connection (each is closed as soon as it opens, as a restarting Redis would be unreachable).
Then it serves again, with everything Redis kept, as a Redis restarted from its append-only
file would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class RedisCrash:
    upstream_port: int
    markers: tuple[bytes, ...] = ()
    applied: bool = True
    down_for: float = 0.0
    crashes: int = 0
    _down_until: float = 0.0
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _serving: set[asyncio.Task[None]] = field(default_factory=set)

    def crash_after(self, *markers: bytes, applied: bool = True, down_for: float = 0.5) -> None:
        self.markers, self.applied, self.down_for = markers, applied, down_for

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        this = asyncio.current_task()
        if this is not None:
            self._serving.add(this)
            this.add_done_callback(self._serving.discard)
        if time.monotonic() < self._down_until:
            client_w.close()
            return
        try:
            redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.close()
            return
        self._writers |= {client_w, redis_w}
        answer_lost = asyncio.Event()

        async def to_redis() -> None:
            while chunk := await client_r.read(65536):
                if self.markers and all(marker in chunk for marker in self.markers):
                    self.markers = ()
                    if not self.applied:
                        self._crash()
                        return
                    answer_lost.set()
                redis_w.write(chunk)
                await redis_w.drain()

        async def to_client() -> None:
            while chunk := await redis_r.read(65536):
                if answer_lost.is_set():
                    self._crash()
                    return
                client_w.write(chunk)
                await client_w.drain()

        try:
            await asyncio.gather(to_redis(), to_client())
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for writer in (client_w, redis_w):
                self._writers.discard(writer)
                writer.close()

    def _crash(self) -> None:
        self.crashes += 1
        self._down_until = time.monotonic() + self.down_for
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()


@asynccontextmanager
async def redis_crash(redis_url: str) -> AsyncIterator[tuple[RedisCrash, str]]:
    """A proxy in front of `redis_url`, and the URL (the same database) that goes through it."""
    parts = urlsplit(redis_url)
    assert parts.hostname in ("127.0.0.1", "localhost") and parts.port is not None
    proxy = RedisCrash(parts.port)
    server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield proxy, f"redis://127.0.0.1:{port}{parts.path}"
    finally:
        server.close()
        proxy._crash()
        await asyncio.gather(*proxy._serving, return_exceptions=True)
        await server.wait_closed()
