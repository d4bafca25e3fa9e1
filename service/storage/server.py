"""The Redis server itself: what the relay needs of it, and what it says of itself.

- Its eviction policy. Any `maxmemory-policy` but `noeviction` deletes keys when memory is full,
  and the relay's keys are its queued work: every process refuses to start under another
  (`require`), and the health report warns if it changes later. It is read through `INFO`,
  since managed Redis often disables `CONFIG`.
- Whether it takes writes: with `noeviction` a full Redis answers writes `OOM command not
  allowed`, which the relay treats as an outage like a lost connection (`refuses_writes`,
  `writable`): callbacks get 503, workers wait and carry on, nothing is lost once memory frees.
- Its figures for the health report (`Facts`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.storage import keys

SAFE_POLICY = "noeviction"
# What losing Redis raises, and what a Redis that refuses writes raises: both are waited out.
LOST = (RedisConnectionError, RedisTimeoutError, OSError)


@dataclass(frozen=True)
class Facts:
    """What `INFO` says of the server, as the health report shows it."""

    used_memory: int
    maxmemory: int  # 0: no limit
    maxmemory_policy: str
    connected_clients: int
    maxclients: int | None
    rejected_connections: int
    evicted_keys: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "used_memory": self.used_memory,
            "maxmemory": self.maxmemory,
            "maxmemory_policy": self.maxmemory_policy,
            "connected_clients": self.connected_clients,
            "maxclients": self.maxclients,
            "rejected_connections": self.rejected_connections,
            "evicted_keys": self.evicted_keys,
        }


async def facts(redis: Redis) -> Facts:
    """Read the server's memory, clients and stats (three `INFO` sections, one round trip)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.info("memory")
        pipe.info("clients")
        pipe.info("stats")
        memory, clients, stats = await pipe.execute()
    maxclients = clients.get("maxclients")
    return Facts(
        used_memory=int(memory.get("used_memory", 0)),
        maxmemory=int(memory.get("maxmemory", 0)),
        maxmemory_policy=str(memory.get("maxmemory_policy", "unknown")),
        connected_clients=int(clients.get("connected_clients", 0)),
        maxclients=int(maxclients) if maxclients is not None else None,
        rejected_connections=int(stats.get("rejected_connections", 0)),
        evicted_keys=int(stats.get("evicted_keys", 0)),
    )


def eviction_problem(policy: str) -> str | None:
    """Why `policy` loses work, with how to change it; None for `noeviction`."""
    if policy == SAFE_POLICY:
        return None
    return (
        f"Redis's maxmemory-policy is {policy}: when memory is full it deletes keys, and the "
        "relay's queued work with them. Set it to noeviction (Heroku: `heroku redis:maxmemory "
        "<name> --policy noeviction`; elsewhere your provider's setting or `CONFIG SET "
        "maxmemory-policy noeviction`)"
    )


def refuses_writes(error: BaseException) -> bool:
    """Whether `error` is Redis refusing a write for want of memory (`noeviction` when full):
    directly, inside a script, or as a transaction it aborted."""
    if isinstance(error, OutOfMemoryError):
        return True
    # Redis 6 reports it from inside a script as a plain error naming it.
    return isinstance(error, ResponseError) and "command not allowed when used memory" in str(error)


async def writable(redis: Redis) -> bool:
    """Whether Redis answers and takes a write now (a short-lived probe key of this process)."""
    try:
        await redis.set(keys.probe(os.getpid()), 1, px=10_000)
    except (RedisError, OSError):
        return False
    return True


async def _policy(url_for_logs: str, redis: Redis) -> str | None:
    """The start-up check's problem, if there is one; None if all is well or Redis is away."""
    try:
        found = await facts(redis)
    except LOST as error:
        if "CERTIFICATE_VERIFY_FAILED" in str(error):
            return (
                f"Redis at {url_for_logs} presents a TLS certificate that is not trusted "
                f"({error}). For a plan with a self-signed certificate (Heroku's), set "
                "REDIS_TLS_VERIFY=false or add ?ssl_cert_reqs=none to REDIS_URL"
            )
        print(
            f"warning: Redis at {url_for_logs} does not answer at start-up ({error}); its "
            "eviction policy is checked once it does",
            file=sys.stderr,
        )
        return None
    except ResponseError as error:  # INFO disabled: nothing to go by
        print(f"warning: cannot read Redis's eviction policy ({error})", file=sys.stderr)
        return None
    return eviction_problem(found.maxmemory_policy)


def require(url_for_logs: str, redis: Redis) -> None:
    """At start-up: exit with one line unless Redis keeps what it is given (`noeviction`).
    A Redis that does not answer yet is not a reason to stop: the processes wait for it."""

    async def check() -> str | None:
        try:
            return await _policy(url_for_logs, redis)
        finally:
            await redis.aclose()

    problem = asyncio.run(check())
    if problem is not None:
        print(f"configuration error: {problem}", file=sys.stderr)
        raise SystemExit(2)


async def policy_problem(redis: Redis) -> str | None:
    """The eviction policy's problem, for a process that found Redis only after start-up."""
    try:
        return eviction_problem((await facts(redis)).maxmemory_policy)
    except ResponseError:
        return None
