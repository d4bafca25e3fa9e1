"""The work queue the web process fills and the workers drain: arq's layout in Redis.

The web process writes jobs itself, in one atomic script with the recording's state
(`service.storage.recordings`), so it uses arq's job encoding and key names from here rather
than arq's `enqueue_job`, which costs several round trips; the rest queue jobs with `enqueue`,
which also survives losing Redis as it queues (see there).
"""

from __future__ import annotations

import time

from arq.constants import (
    default_queue_name,
    expires_extra_ms,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
)
from arq.jobs import serialize_job
from redis.asyncio import Redis

from service.storage import keys

QUEUE = default_queue_name
PROCESS_RECORDING = "process_recording"
COLLECT_TRANSCRIPTION = "collect_transcription"
DELETE_RECORDING = "delete_recording"
RUN_BACKFILL = "run_backfill"
# An unstarted job expires after this long, as arq's own `enqueue_job` does.
JOB_TTL_MS = expires_extra_ms


def job_id(function: str, recording_id: str) -> str:
    """One job per recording and step: arq will not queue a second while the first exists."""
    return f"{function}:{recording_id}"


def job_key(job_id: str) -> str:
    return job_key_prefix + job_id


def result_key(job_id: str) -> str:
    return result_key_prefix + job_id


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


async def enqueue(redis: Redis, function: str, arg: str, defer: float = 0.0) -> bool:
    """Queue `function(arg)` to run in `defer` seconds, unless that job is queued or running
    already (arq's rule); whether it was queued now.

    One transaction, with no key watched: arq's `enqueue_job` watches the job's key, and when
    the connection is lost as it queues the job, redis-py says so with the WatchError arq takes
    for "queued already", and the job is lost without a word. Here a lost connection raises (the
    caller runs again), and a job whose key was left without its place in the queue gets it.
    """
    job = job_id(function, arg)
    now_ms = int(time.time() * 1000)
    due_ms = now_ms + int(defer * 1000)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(
            job_key(job),
            encode_job(function, (arg,), now_ms),
            px=due_ms - now_ms + JOB_TTL_MS,
            nx=True,
        )
        pipe.zadd(QUEUE, {job: due_ms}, nx=True)
        if defer <= 0:
            pipe.publish(keys.WAKE_JOBS, 1)
        created, *_ = await pipe.execute()
    return bool(created)
