"""A job riding out a short Redis outage instead of leaving its work to arq's lock lapse.

An outage is Redis gone (a restart, a failover, connections refused at `maxclients`) or Redis
refusing writes (`OOM command not allowed`: a `noeviction` Redis that is full).

A job that loses Redis cannot tell arq how it ended either (arq writes that to Redis), so
arq's lock on it stays until it lapses (`WORKER_JOB_TIMEOUT` + 10 s) before the job runs
again. Instead, a job that loses Redis waits for it (`redis_back`) for most of the time it has
(`job_time`), then asks to run again shortly (`Retry`): arq's bookkeeping then lands, and the
job runs again within seconds of Redis's return. Every job is safe to run again.

A write whose answer was lost (Redis kept it and died before answering, or the connection
broke) can be repeated the same way once Redis is back: the pipeline does that for the one
write whose fate must be known (its mark that a transcription is being bought).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from arq import Retry
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from service.storage.server import refuses_writes, writable

log = logging.getLogger("recording_relay.worker")
# What losing Redis raises. redis-py raises a WatchError, not a ConnectionError, for a
# connection lost while a key is watched; arq watches a key when it takes or queues a job, and
# handles the WatchError of a watched key that changed itself, so one that reaches us is a loss.
LOST = (RedisConnectionError, RedisTimeoutError, WatchError)
PATIENCE = 0.8  # of a job's time, the part it may spend waiting for Redis
REDIS_LOSS_DEFER = 1.0  # seconds before a job that lost Redis runs again
_deadline: ContextVar[float | None] = ContextVar("job_deadline", default=None)
Job = TypeVar("Job", bound=Callable[..., Awaitable[str]])


@contextmanager
def job_time(seconds: float) -> Iterator[None]:
    """The job running in this context has `seconds` (arq's job timeout) from now."""
    token = _deadline.set(time.monotonic() + seconds * PATIENCE)
    try:
        yield
    finally:
        _deadline.reset(token)


def redis_trouble(error: BaseException) -> bool:
    """Whether `error` is Redis gone (`LOST`) or refusing writes for want of memory: an outage
    to wait out, not a failure of the work."""
    return isinstance(error, (*LOST, OSError)) or refuses_writes(error)


def outage(error: BaseException) -> str:
    """An outage as a log line says it."""
    if refuses_writes(error):
        return "Redis refuses writes (OOM: maxmemory reached)"
    return f"lost Redis ({error})"


async def redis_back(redis: Redis) -> bool:
    """Wait for Redis to answer again and take writes, as long as the running job may;
    whether it did."""
    deadline = _deadline.get() or time.monotonic()
    delay = 0.05
    while True:
        if await writable(redis):
            return True
        if time.monotonic() + delay > deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


def redis_loss_is_a_retry(job: Job) -> Job:
    """arq ends a job that raises for good; losing Redis mid-job must instead run it again,
    once Redis answers (or, if it does not while the job may wait, once arq's lock lapses)."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: str) -> str:
        with job_time(ctx["job_timeout"]):
            try:
                return await job(ctx, *args)
            except Exception as error:
                if not redis_trouble(error):
                    raise
                back = await redis_back(ctx["redis"])
                log.warning(
                    "%s: %s; it runs again %s",
                    job.__name__,
                    outage(error),
                    "shortly" if back else "once its lock lapses",
                )
                raise Retry(defer=REDIS_LOSS_DEFER) from error

    return run  # type: ignore[return-value]
