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

Starting and ending a job are arq's own steps, each one script call (`service.storage.jobs.
JobLocks`) instead of a watched transaction per job: the same keys, a third of the commands.

Burst mode, cron jobs and kept results, which the relay does not use, are not supported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.worker import Worker

from service.storage import keys
from service.storage.jobs import JobLocks
from service.storage.wakeups import IDLE_LOOK, Wakeups

log = logging.getLogger("arq.worker")
LOCKS_LOOKED = 20  # due jobs whose locks one look reads at most


class JobWorker(Worker):
    """arq's worker, woken by a notice when a job is queued instead of polling."""

    def __init__(self, wakeups: Wakeups, **options: Any) -> None:
        if options.get("burst") or options.get("cron_jobs") or options.get("keep_result", 0):
            raise ValueError("JobWorker runs neither in burst mode, cron jobs nor kept results")
        super().__init__(**options)
        self.wakeups = wakeups
        self.locks = JobLocks(self.pool)
        self._due_seen: list[str] = []  # the due jobs the last look found
        self._next_deferred: float | None = None  # when the last look's next deferred job is due

    async def _poll_iteration(self) -> None:
        """arq's iteration: take what is due and start it, forget finished tasks, record health.
        One look at the queue serves both this and the wait that follows (`_until_next_due`):
        the first jobs by score are the due ones, then the next deferred one."""
        if self.allow_pick_jobs and self.job_counter < self.max_jobs:
            now_ms = int(time.time() * 1000)
            first = await self.pool.zrangebyscore(
                self.queue_name, "-inf", "+inf", start=0, num=self.queue_read_limit, withscores=True
            )
            due = [job for job, score in first if score <= now_ms]
            later = [score for _, score in first if score > now_ms]
            self._next_deferred = later[0] / 1000 if later else None
            await self.start_jobs(due)
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # errors in run_job end the worker, as in arq
        await self.heart_beat()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's `start_jobs`: lock each due job no worker runs, and run it; the locks are
        taken in one script call for all of them."""
        room = self.max_jobs - self.job_counter
        self._due_seen = [job.decode() for job in job_ids]
        wanted = [job for job in self._due_seen if job not in self.tasks][:room]
        lock_ms = int(self.in_progress_timeout_s * 1000)
        for job_id, score in await self.locks.start(wanted, lock_ms):
            await self.sem.acquire()  # never waits: `room` counted the free places
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id, score))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's `finish_job` for jobs that keep no result: one script call."""
        if finish:
            await self.locks.finish(job_id, "finish")
        elif incr_score:
            await self.locks.finish(job_id, "retry", incr_score)
        else:
            await self.locks.finish(job_id, "release")

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
        held elsewhere lapses (at most `IDLE_LOOK`). A worker whose every place is taken waits
        for one of its jobs to end instead."""
        if self.job_counter >= self.max_jobs or not self.allow_pick_jobs:
            return IDLE_LOOK
        waits = [IDLE_LOOK]
        if self._next_deferred is not None:
            waits.append(self._next_deferred - time.time())
        # Due jobs the last look found that this worker is not running: their locks are held
        # elsewhere (or were, by a worker that died or lost Redis mid-job).
        elsewhere = [job for job in self._due_seen[:LOCKS_LOOKED] if job not in self.tasks]
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
