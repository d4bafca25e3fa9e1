"""The dispatcher: each worker process's loop that claims due deliveries and attempts them.

Up to `DELIVERY_CONCURRENCY` attempts run side by side. When the process stops it claims
nothing more, lets running attempts finish for a grace period, then cancels the rest: their
leases lapse and another worker sends them again (at least once). Losing Redis does not end
the loop; it claims again once Redis answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.storage.deliveries import Claimed, DeliveryQueue
from workers.delivery import Deliverer

log = logging.getLogger("recording_relay.dispatcher")


class Dispatcher:
    def __init__(
        self, queue: DeliveryQueue, deliverer: Deliverer, concurrency: int, poll: float = 0.05
    ) -> None:
        self.queue = queue
        self.deliverer = deliverer
        self.concurrency = concurrency
        self.poll = poll  # seconds between looks at the queue when nothing was due
        self.running: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._finished = asyncio.Event()  # an attempt ended: there is room to claim more
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dispatcher")

    def stop_claiming(self) -> None:
        self._stopping = True
        self._finished.set()

    async def stop(self, grace: float) -> None:
        """Claim nothing more; give running attempts `grace` seconds, then cancel them."""
        self.stop_claiming()
        if self._task is not None:
            await self._task
        if self.running:
            _, late = await asyncio.wait(self.running, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _run(self) -> None:
        backoff = self.poll
        while not self._stopping:
            self._finished.clear()
            room = self.concurrency - len(self.running)
            claimed: list[Claimed] = []
            if room > 0:
                try:
                    claimed = await self.queue.claim(room)
                    backoff = self.poll
                except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                    log.warning("cannot claim deliveries (%s); trying again", error)
                    backoff = min(backoff * 2, 5.0)
            for delivery in claimed:
                task = asyncio.create_task(self._deliver(delivery))
                self.running.add(task)
                task.add_done_callback(self._done)
            if claimed and len(claimed) == room:
                continue  # perhaps more are due: look again before waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), backoff)

    async def _deliver(self, delivery: Claimed) -> None:
        try:
            await self.deliverer.deliver(delivery)
        except Exception:  # its lease lapses and it is attempted again
            log.exception("delivery %s to %s", delivery.msg_id, delivery.subscription_id)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        self._finished.set()
