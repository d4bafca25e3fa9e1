"""What the relay keeps in Redis about each recording, and the scripts that change it atomically.

Keys, all under `rr:recording:{recording_id}`:
- the hash itself: the pipeline state (`status`, `accepted_at`, the first callback, ...);
- `:callbacks`: every callback received for the recording (duplicates and MultiPartyCall
  progress events included), newest last, capped;
- `:transcription`: Plivo's transcription callback, once it has come.

Accepting a callback is one script: log it, claim the recording, queue its job. Either all of it
happens or none does, and a recording is claimed once however often Plivo repeats itself.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from service import queue
from service.callbacks import RecordingCallback, TranscriptionCallback

CALLBACK_LOG_MAX = 50

ACCEPT = """
local state, log, job, result, jobs = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local callback, now, starts, retention = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('RPUSH', log, callback)
redis.call('LTRIM', log, -tonumber(ARGV[5]), -1)
redis.call('EXPIRE', log, retention)
if starts ~= '1' then return 'recorded' end
if redis.call('HSETNX', state, 'accepted_at', now) == 0 then return 'duplicate' end
redis.call('HSET', state, 'status', 'queued', 'callback', callback, 'updated_at', now)
redis.call('EXPIRE', state, retention)
if redis.call('EXISTS', job, result) == 0 then
  redis.call('PSETEX', job, ARGV[6], ARGV[7])
  redis.call('ZADD', jobs, now, ARGV[8])
end
return 'queued'
"""


class Outcome(StrEnum):
    QUEUED = "queued"  # first sight of a finished recording: its pipeline starts
    DUPLICATE = "duplicate"  # the recording was already accepted
    RECORDED = "recorded"  # a progress event: logged, nothing to do yet


def connect(url: str) -> Redis:
    """A client with short timeouts (Plivo must hear back fast) and one retry on a dropped link."""
    client: Redis = Redis.from_url(
        url,
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[ConnectionError],
    )
    return client


def recording_key(recording_id: str) -> str:
    return f"rr:recording:{recording_id}"


class RecordingStore:
    """The recordings' state in Redis."""

    def __init__(self, redis: Redis, retention_days: int) -> None:
        self.redis = redis
        self.retention_seconds = retention_days * 86_400
        self._accept = redis.register_script(ACCEPT)

    async def accept(self, callback: RecordingCallback) -> Outcome:
        """Log a recording callback and, the first time a recording is ready, queue its job."""
        key = recording_key(callback.recording_id)
        job_id = queue.job_id(queue.PROCESS_RECORDING, callback.recording_id)
        now_ms = int(time.time() * 1000)
        job = queue.encode_job(queue.PROCESS_RECORDING, (callback.recording_id,), now_ms)
        outcome = await self._accept(
            keys=[
                key,
                f"{key}:callbacks",
                queue.job_key(job_id),
                queue.result_key(job_id),
                queue.QUEUE,
            ],
            args=[
                callback.model_dump_json(),
                now_ms,
                "1" if callback.starts_pipeline else "0",
                self.retention_seconds,
                CALLBACK_LOG_MAX,
                queue.JOB_TTL_MS,
                job,
                job_id,
            ],
        )
        return Outcome(outcome.decode())

    async def save_transcription(self, callback: TranscriptionCallback) -> None:
        """Keep Plivo's transcription callback for the pipeline (the latest one wins)."""
        key = f"{recording_key(callback.recording_id)}:transcription"
        await self.redis.set(key, callback.model_dump_json(), ex=self.retention_seconds)

    async def state(self, recording_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(recording_key(recording_id))  # type: ignore[misc]
        if not raw:
            return None
        return {k.decode(): v.decode() for k, v in raw.items()}
