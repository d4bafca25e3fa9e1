"""The dispatcher: each worker process's loop that attempts deliveries side by side.

Deliveries come two ways: handed over by the process's own pipeline as it fans an event out
(`submit`: a subscriber with a free slot gets it at once, with no claim), or claimed from the
delivery queue (retries, what waited for a slot or an earlier event, what another process
queued, leases that lapsed). Up to `DELIVERY_CONCURRENCY` attempts run at once. Between claims
the loop waits for a wake-up (`service.storage.wakeups`: a delivery queued elsewhere; an
attempt of its own whose settling made one due now, or that frees room while more may wait) or
until the queue's next delivery is due or lease lapses, never longer than `IDLE_LOOK`. When the
process stops it claims nothing more, lets running attempts finish for a grace period, then
cancels the rest: their leases lapse and another worker sends them again (at least once).
Losing Redis does not end the loop, nor does a Redis that refuses writes: it claims again once
Redis answers.
"""

from __future__ import annotations

import asyncio
import logging
import time

from service.domain.attempts import Outcome
from service.storage import keys
from service.storage.deliveries import Claimed, DeliveryQueue
from service.storage.wakeups import IDLE_LOOK, Wakeups
from workers.delivery import Deliverer, Settled
from workers.redis_outage import outage, redis_trouble

log = logging.getLogger("recording_relay.dispatcher")


class Dispatcher:
    """Claims due webhook deliveries and attempts them side by side, up to its concurrency."""

    def __init__(
        self, queue: DeliveryQueue, deliverer: Deliverer, concurrency: int, wakeups: Wakeups
    ) -> None:
        self.queue = queue
        self.holder = queue.holder
        self.deliverer = deliverer
        self.concurrency = concurrency
        self.wakeups = wakeups
        self.running: set[asyncio.Task[Settled | None]] = set()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # More may be due than this process took: its last claim filled the room, or a
        # delivery was queued while it was full. An attempt that ends then looks again.
        self._more = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dispatcher")

    def room(self) -> int:
        """Attempts this process may start now (none before it starts or once it stops)."""
        if self._task is None or self._stopping:
            return 0
        return max(0, self.concurrency - len(self.running))

    def submit(self, deliveries: list[Claimed]) -> None:
        """Attempt deliveries leased to this process elsewhere in it (the pipeline's fan-out)."""
        for delivery in deliveries:
            self._start(delivery)

    def stop_claiming(self) -> None:
        self._stopping = True
        self.deliverer.chain = False
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
                    self._more = len(claimed) == room
                    if claims.next_due is not None:
                        wait = claims.next_due - time.time()
                except Exception as error:
                    if not redis_trouble(error):
                        raise
                    log.warning("cannot claim deliveries: %s; trying again", outage(error))
                    wait, backoff = backoff, min(backoff * 2, 5.0)
            for delivery in claimed:
                self._start(delivery)
            if self._more and claimed:
                continue  # perhaps more are due: look again before waiting
            if await self.wakeups.wait(keys.WAKE_DELIVERIES, wait) and room <= 0:
                self._more = True  # queued while full: claim as soon as a slot frees

    def _start(self, delivery: Claimed) -> None:
        task = asyncio.create_task(self._deliver(delivery))
        self.running.add(task)
        task.add_done_callback(self._done)

    async def _deliver(self, delivery: Claimed) -> Settled | None:
        """Attempt `delivery` until it is settled. This worker holds it meanwhile, and nobody
        else will take it while the worker lives: an attempt cut short (Redis lost or full as
        it settled, or anything unforeseen) is made again once Redis answers, at least once,
        with the same webhook-id (a settle whose answer was lost changed nothing the second
        time but the log). A stopping worker gives it up: it is released as cut short."""
        backoff = 0.1
        while True:
            try:
                return await self.deliverer.deliver(delivery)
            except Exception as error:
                if self._stopping:
                    return None
                if redis_trouble(error):
                    log.warning(
                        "delivery %s to %s cut short: %s; attempting it again",
                        delivery.msg_id,
                        delivery.subscription_id,
                        outage(error),
                    )
                    pause, backoff = backoff, min(backoff * 2, 5.0)
                else:
                    log.exception("delivery %s to %s", delivery.msg_id, delivery.subscription_id)
                    pause = 30.0
            await asyncio.sleep(pause)

    def _done(self, task: asyncio.Task[Settled | None]) -> None:
        self.running.discard(task)
        settled = None if task.cancelled() else task.result()
        if settled is not None and settled.next.then is not None:
            self._start(settled.next.then)  # the recording's next event, in the same slot
        # Look at the queue again if something is due now, if there is room for what waited
        # for it, or to learn when a retry comes due.
        woke = settled is not None and (settled.next.woke or settled.outcome == Outcome.RETRY)
        if self._more or woke:
            self.wakeups.wake(keys.WAKE_DELIVERIES)
