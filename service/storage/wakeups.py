"""Wake-ups: how a worker learns that work has come, instead of looking for it.

Whatever makes work due now (the accept script queuing a recording's job, a transcription
callback moving its collector forward, a delivery queued) publishes its queue's channel
(`keys.WAKE_JOBS`, `keys.WAKE_DELIVERIES`) in the same script or transaction. A settled attempt
that makes the next message or a waiting delivery due publishes nothing: the dispatcher that
settled it looks at the queue again as the attempt ends (`Wakeups.wake`, in the process); a
wake-up to every worker would add a claim to each webhook. Each worker process listens on one
connection of its own (`Wakeups`), and its two consumers (the arq worker, the dispatcher) wait
on `Wakeups.wait`: until a wake-up, the time their queue says the next deferred work is due, or
`IDLE_LOOK`, whichever comes first.

A wake-up may be lost: the listener is reconnecting, or the process is busy and reads it
late. Nothing depends on it for correctness: a consumer clears its wake-up before it looks at
its queue, so a wake-up published after that look ends its wait; each reconnection wakes every
consumer (something may have been published meanwhile); and `IDLE_LOOK` bounds the wait for
what no one announces (a lock or lease that lapsed with a dead worker, work deferred by another
process). An idle worker therefore costs Redis a few commands every `IDLE_LOOK` seconds, and
the web process, which only publishes, nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.storage import keys

log = logging.getLogger("recording_relay.wakeups")

# The longest a consumer waits without looking at its queue (seconds).
IDLE_LOOK = 10.0
CHANNELS = (keys.WAKE_JOBS, keys.WAKE_DELIVERIES)


class Wakeups:
    """One worker process's listener on the wake-up channels (its own connection)."""

    def __init__(self, redis: Redis) -> None:
        # A connection of its own with no read timeout: a quiet channel is the normal state
        # (`service.storage.connections.listener`).
        self.redis = redis
        self._events = {channel: asyncio.Event() for channel in CHANNELS}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="wakeups")

    def clear(self, channel: str) -> None:
        """Forget past wake-ups of `channel`: a consumer calls it before it looks at its queue."""
        self._events[channel].clear()

    def wake(self, channel: str) -> None:
        """Wake `channel`'s consumer from within the process (an attempt ended, a job finished:
        there is room for more, or the job put itself back in the queue)."""
        self._events[channel].set()

    async def wait(self, channel: str, at_most: float) -> bool:
        """Until `channel` is woken (since `clear`) or `at_most` seconds, at most `IDLE_LOOK`;
        whether it was woken."""
        # `asyncio.timeout`, not `wait_for`: in Python 3.11 `wait_for` can swallow the
        # cancellation of a consumer whose event is set at the same moment, and the consumer
        # (arq's loop, the dispatcher) would then never end.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, min(at_most, IDLE_LOOK))):
                await self._events[channel].wait()
        return self._events[channel].is_set()

    def _wake_all(self) -> None:
        for event in self._events.values():
            event.set()

    async def _listen(self) -> None:
        delay = 0.2
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*CHANNELS)
                self._wake_all()  # whatever was published while this was not listening
                delay = 0.2
                async for message in pubsub.listen():
                    event = self._events.get(message["channel"].decode())
                    if event is not None:
                        event.set()
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                log.debug("wake-ups: lost Redis (%s); listening again shortly", error)
            finally:
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            self._wake_all()  # consumers look for themselves meanwhile
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.redis.aclose()
