"""The work queue the web process fills and the workers drain: arq's layout in Redis.

The web process writes jobs itself, in one atomic script with the recording's state
(`service.storage.recordings`), so it uses arq's job encoding and key names from here rather
than arq's `enqueue_job`, which costs several round trips; the rest queue jobs with `enqueue`,
which also survives losing Redis as it queues (see there). The worker locks and ends jobs with
`JobLocks` (arq's own steps, in one script call each: `workers.job_worker`).
"""

from __future__ import annotations

import time

from arq.constants import (
    default_queue_name,
    expires_extra_ms,
    in_progress_key_prefix,
    job_key_prefix,
    retry_key_prefix,
)
from arq.jobs import serialize_job
from redis.asyncio import Redis

from service.storage import keys, lua

QUEUE = default_queue_name
PROCESS_RECORDING = "process_recording"
COLLECT_TRANSCRIPTION = "collect_transcription"
DELETE_RECORDING = "delete_recording"
RUN_BACKFILL = "run_backfill"
RUN_ERASURE = "run_erasure"
# The jobs of a recording's pipeline: an erasure drops them.
PIPELINE = (PROCESS_RECORDING, COLLECT_TRANSCRIPTION, DELETE_RECORDING)
# An unstarted job expires after this long, as arq's own `enqueue_job` does.
JOB_TTL_MS = expires_extra_ms
ENQUEUE = lua.source("enqueue")


def job_id(function: str, recording_id: str) -> str:
    """One job per recording and step: arq will not queue a second while the first exists."""
    return f"{function}:{recording_id}"


def job_key(job_id: str) -> str:
    return job_key_prefix + job_id


def encode_job(function: str, args: tuple[str, ...], enqueue_ms: int) -> bytes:
    """A job as arq's worker reads it (arq's default pickle serializer)."""
    return serialize_job(function, args, {}, None, enqueue_ms)


async def depth(redis: Redis) -> tuple[int, int]:
    """Pipeline jobs in arq's queue: due now, and deferred (polls, retries, deletions)."""
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(QUEUE, "-inf", now_ms)
        pipe.zcard(QUEUE)
        due, queued = await pipe.execute()
    return int(due), int(queued) - int(due)


async def oldest_due(redis: Redis, now: float, look: int = 20) -> float | None:
    """How long (seconds) the oldest due job that no worker is running has waited to start;
    None when none waits. Looks at the `look` longest-due jobs (a running job stays in the
    queue, under arq's in-progress lock, until it ends)."""
    due = await redis.zrangebyscore(QUEUE, "-inf", int(now * 1000), 0, look, withscores=True)
    if not due:
        return None
    async with redis.pipeline(transaction=False) as pipe:
        for job, _ in due:
            pipe.exists(in_progress_key_prefix + job.decode())
        running = await pipe.execute()
    waiting = [score for (_, score), locked in zip(due, running, strict=True) if not locked]
    return round(now - waiting[0] / 1000, 3) if waiting else None


async def enqueue(
    redis: Redis, function: str, arg: str, defer: float = 0.0, due_now_if: str = ""
) -> bool:
    """Queue `function(arg)` to run in `defer` seconds (at once if the key `due_now_if` exists),
    unless that job is queued or running already (arq's rule); whether it was queued now.

    One script call: arq's `enqueue_job` watches the job's key, and when the connection is lost
    as it queues the job, redis-py says so with the WatchError arq takes for "queued already",
    and the job is lost without a word. Here a lost connection raises (the caller runs again),
    and a job whose key was left without its place in the queue gets it.
    """
    job = job_id(function, arg)
    now_ms = int(time.time() * 1000)
    due_ms = now_ms + int(defer * 1000)
    created = await redis.register_script(ENQUEUE)(
        keys=[QUEUE, job_key(job), due_now_if],
        args=[
            job,
            encode_job(function, (arg,), now_ms),
            now_ms,
            due_ms,
            due_ms - now_ms + JOB_TTL_MS,
            keys.WAKE_JOBS,
        ],
    )
    return bool(created)


async def hold(redis: Redis, function: str, arg: str, holder: str, ms: int) -> bool:
    """Take for `holder`, for `ms`, the lock a worker takes to run `function(arg)` (arq's
    in-progress key), so that no worker starts that job meanwhile; False if a worker or another
    holder has it. Call again to keep it (it is extended), `let_go` to give it back."""
    lock = in_progress_key_prefix + job_id(function, arg)
    if await redis.set(lock, holder, nx=True, px=ms):
        return True
    return await redis.get(lock) == holder.encode() and bool(await redis.pexpire(lock, ms))


async def let_go(redis: Redis, function: str, arg: str, holder: str) -> None:
    lock = in_progress_key_prefix + job_id(function, arg)
    if await redis.get(lock) == holder.encode():
        await redis.delete(lock)


async def running(redis: Redis, recording_id: str) -> bool:
    """Whether a worker runs one of the recording's pipeline jobs now (arq's in-progress
    lock)."""
    names = [in_progress_key_prefix + job_id(f, recording_id) for f in PIPELINE]
    return bool(await redis.exists(*names))


async def enqueue_collector(redis: Redis, recording_id: str, defer: float) -> bool:
    """Queue the recording's transcription collector for its first poll, or for now if Plivo's
    transcription callback has come already (the web process moves a queued one itself)."""
    return await enqueue(
        redis,
        COLLECT_TRANSCRIPTION,
        recording_id,
        defer=defer,
        due_now_if=keys.recording_transcription(recording_id),
    )


class JobLocks:
    """arq's bookkeeping of a job run, each step one script call instead of a transaction
    (`start_jobs.lua`, `finish_job.lua`): what arq writes, in the same keys."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._start = redis.register_script(lua.source("start_jobs"))
        self._finish = redis.register_script(lua.source("finish_job"))

    async def start(self, job_ids: list[str], lock_ms: int) -> list[tuple[str, int]]:
        """Lock those of `job_ids` that are due and that no worker runs; each with its score."""
        if not job_ids:
            return []
        now = int(time.time() * 1000)
        started = await self._start(
            keys=[QUEUE], args=[now, lock_ms, in_progress_key_prefix, *job_ids]
        )
        return [(job.decode(), int(float(score))) for job, score in started]

    async def finish(self, job_id: str, how: str, add_ms: int = 0) -> None:
        """`finish` (done for good), `retry` (its score moved `add_ms` later) or `release`."""
        await self._finish(
            keys=[
                QUEUE,
                in_progress_key_prefix + job_id,
                retry_key_prefix + job_id,
                job_key_prefix + job_id,
            ],
            args=[job_id, how, add_ms],
        )
