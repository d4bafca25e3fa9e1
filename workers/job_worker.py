"""arq's worker, woken when a job comes instead of looking for one every `poll_delay`.

arq's own loop looks at its queue at a fixed pace (20 times a second at the 50 ms the relay
used): a job waits half a pace on average before it starts, and an idle worker asks Redis all
day. This worker runs arq's own iteration (`_poll_iteration`: take what is due, start it under
arq's lock, keep arq's retries and at-least-once guarantees), but between iterations it waits
(`service.storage.wakeups`) for whichever comes first:

- a wake-up: the web process queued a job, or a transcription callback moved a collector up;
- one of its own jobs ending: a slot is free, and the job may have put itself back in the queue;
- the next deferred job's due time (a poll of Plivo, a retry, a deletion);
- the earliest lapse of the lock on a due job that another worker holds (or held: a worker
  that died, or one that lost Redis mid-job), when that job can be taken up;
- `IDLE_LOOK`, for what no one announces otherwise.

Burst mode and cron jobs, which the relay does not use, are not supported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.worker import Worker

from service.storage import keys
from service.storage.wakeups import IDLE_LOOK, Wakeups

log = logging.getLogger("arq.worker")
LOCKS_LOOKED = 20  # due jobs whose locks one look reads at most


class JobWorker(Worker):
    def __init__(self, wakeups: Wakeups, **options: Any) -> None:
        if options.get("burst") or options.get("cron_jobs"):
            raise ValueError("JobWorker runs neither in burst mode nor cron jobs")
        super().__init__(**options)
        self.wakeups = wakeups

    async def main(self) -> None:
        log.info(
            "Starting worker for %d functions: %s", len(self.functions), ", ".join(self.functions)
        )
        self.ctx["redis"] = self.pool
        this = asyncio.current_task()
        while True:
            self.wakeups.clear(keys.WAKE_JOBS)  # what is published from now on counts
            await self._poll_iteration()
            # A cancellation that lands inside arq's iteration can be swallowed on the way (seen
            # on shutdown: `_poll_iteration` returned normally with the cancel requested, and
            # the loop then ran for ever); honour it here.
            if this is not None and this.cancelling():
                raise asyncio.CancelledError
            await self.wakeups.wait(keys.WAKE_JOBS, await self._until_next_due())

    async def _until_next_due(self) -> float:
        """Seconds until the queue's next deferred job is due, or until the lock on a due job
        held elsewhere lapses (at most `IDLE_LOOK`)."""
        now_ms = int(time.time() * 1000)
        async with self.pool.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(
                self.queue_name, min=f"({now_ms}", max="+inf", start=0, num=1, withscores=True
            )
            pipe.zrangebyscore(self.queue_name, min="-inf", max=now_ms, start=0, num=LOCKS_LOOKED)
            deferred, due = await pipe.execute()
        waits = [IDLE_LOOK]
        if deferred:
            waits.append((deferred[0][1] - now_ms) / 1000)
        elsewhere = [j.decode() for j in due if j.decode() not in self.job_tasks]
        if elsewhere:
            async with self.pool.pipeline(transaction=False) as pipe:
                for job_id in elsewhere:
                    pipe.pttl(in_progress_key_prefix + job_id)
                lapses = await pipe.execute()
            # A due job with no lock is this worker's to take when it has room (a job of its
            # own ending wakes it); one under a lock can be taken once the lock lapses.
            waits += [ms / 1000 for ms in lapses if ms > 0]
        return min(waits)

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self.wakeups.wake(keys.WAKE_JOBS)
