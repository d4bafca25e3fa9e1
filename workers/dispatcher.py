"""The dispatcher: each worker process's loop that claims due deliveries and attempts them.

Up to `DELIVERY_CONCURRENCY` attempts run side by side. Between claims it waits for a wake-up
(`service.storage.wakeups`: a delivery queued; an attempt of its own ended, whose settling
may have made the next message or a waiting delivery due) or until the queue's next delivery
is due or lease lapses, never longer than `IDLE_LOOK`. When the process stops it claims
nothing more, lets running attempts finish for a grace period, then cancels the rest: their
leases lapse and another worker sends them again (at least once). Losing Redis does not end
the loop, nor does a Redis that refuses writes: it claims again once Redis answers.
"""

from __future__ import annotations

import asyncio
import logging
import time

from service.storage import keys
from service.storage.deliveries import Claimed, DeliveryQueue
from service.storage.wakeups import IDLE_LOOK, Wakeups
from workers.delivery import Deliverer
from workers.redis_outage import outage, redis_trouble

log = logging.getLogger("recording_relay.dispatcher")


class Dispatcher:
    def __init__(
        self, queue: DeliveryQueue, deliverer: Deliverer, concurrency: int, wakeups: Wakeups
    ) -> None:
        self.queue = queue
        self.deliverer = deliverer
        self.concurrency = concurrency
        self.wakeups = wakeups
        self.running: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dispatcher")

    def stop_claiming(self) -> None:
        self._stopping = True
        self.wakeups.wake(keys.WAKE_DELIVERIES)

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
        backoff = 0.1
        while not self._stopping:
            self.wakeups.clear(keys.WAKE_DELIVERIES)  # what is published from now on counts
            room = self.concurrency - len(self.running)
            claimed: list[Claimed] = []
            wait = IDLE_LOOK  # full: an attempt that ends wakes the loop
            if room > 0:
                try:
                    claims = await self.queue.claim(room)
                    claimed, backoff = claims.taken, 0.1
                    if claims.next_due is not None:
                        wait = claims.next_due - time.time()
                except Exception as error:
                    if not redis_trouble(error):
                        raise
                    log.warning("cannot claim deliveries: %s; trying again", outage(error))
                    wait, backoff = backoff, min(backoff * 2, 5.0)
            for delivery in claimed:
                task = asyncio.create_task(self._deliver(delivery))
                self.running.add(task)
                task.add_done_callback(self._done)
            if claimed and len(claimed) == room:
                continue  # perhaps more are due: look again before waiting
            await self.wakeups.wait(keys.WAKE_DELIVERIES, wait)

    async def _deliver(self, delivery: Claimed) -> None:
        try:
            await self.deliverer.deliver(delivery)
        except Exception:  # its lease lapses and it is attempted again
            log.exception("delivery %s to %s", delivery.msg_id, delivery.subscription_id)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        self.wakeups.wake(keys.WAKE_DELIVERIES)  # room for one more
