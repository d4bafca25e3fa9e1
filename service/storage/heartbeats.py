"""Workers' heartbeats: which worker processes are alive, for the health report.

Each worker process writes its name and the time into one sorted set (`keys.WORKERS`) every
`EVERY` seconds and removes itself when it stops; one whose last beat is older than `ALIVE`
is dead (killed, or cut off from Redis). Beats older than a day are dropped as they are read.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from service.storage import keys

EVERY = 5.0  # seconds between a worker's beats
ALIVE = 30.0  # a worker that has not beaten for this long is taken for dead
FORGOTTEN = 86_400.0  # beats older than this are dropped


def this_process() -> str:
    """A worker's name: the PaaS's (`DYNO` on Heroku, `RENDER_INSTANCE_ID` on Render,
    `FLY_MACHINE_ID` on Fly) or the host's, and the process id."""
    host = (
        os.environ.get("DYNO")
        or os.environ.get("RENDER_INSTANCE_ID")
        or os.environ.get("FLY_MACHINE_ID")
        or socket.gethostname()
    )
    return f"{host}:{os.getpid()}"


@dataclass(frozen=True)
class Beat:
    """A worker's last heartbeat."""

    worker: str
    at: float  # epoch seconds

    def alive(self, now: float) -> bool:
        return now - self.at <= ALIVE


class Heartbeats:
    """The workers' heartbeats in Redis: who is alive, and who died holding work."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def beat(self, worker: str, now: float | None = None) -> None:
        await self.redis.zadd(keys.WORKERS, {worker: time.time() if now is None else now})

    async def forget(self, worker: str) -> None:
        await self.redis.zrem(keys.WORKERS, worker)

    async def recent(self, now: float | None = None) -> list[Beat]:
        """Every worker's last beat of the last day, newest first."""
        now = time.time() if now is None else now
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(keys.WORKERS, "-inf", now - FORGOTTEN)
            pipe.zrevrange(keys.WORKERS, 0, 99, withscores=True)
            _, rows = await pipe.execute()
        return [Beat(worker.decode(), float(at)) for worker, at in rows]
