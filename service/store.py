"""What the relay keeps in Redis about each recording, and the scripts that change it atomically.

Keys, all under `rr:recording:{recording_id}`:
- the hash itself: the pipeline state (`status`, `accepted_at`, the callback that started it
  as `callback`, ...);
- `:callbacks`: every other callback received for the recording (duplicates, MultiPartyCall
  progress events), newest last, capped;
- `:transcription`: Plivo's transcription callback, once it has come.

While a recording is in flight its hash also holds Plivo's Recording object (`recording`) and
each event's body (`event:<type>`); once it is final they are in the archive
(`service.archive`) and `finish` removes them, leaving a few hundred bytes.

Accepting a callback is one script: log it, claim the recording, queue its job. Either all of it
happens or none does, and a recording is claimed once however often Plivo repeats itself.
Concurrent callbacks share one script call (`service.batch`), which is what lets one web
process take thousands a second.
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from service import queue
from service.batch import Batcher
from service.callbacks import RecordingCallback, TranscriptionCallback
from service.deliveries import recording_attempts_key
from service.events import EVENT_TYPES
from service.script import Script

CALLBACK_LOG_MAX = 50
log = logging.getLogger("recording_relay.store")

# One call accepts a batch of callbacks, in order (see `service.batch`).
# KEYS: the arq queue, the recordings' index, then four keys a callback: state, callback log,
# arq job, arq result. ARGV: now (ms), retention (s), log cap, job TTL (ms), then six a
# callback: the callback's JSON, "1" if it starts the pipeline, the encoded arq job, the job
# id, the signing account, the recording id.
# Each callback runs under its own `pcall`: one that fails is reported as `failed: <error>`
# and changes neither the answer nor the fate of the others in the batch.
ACCEPT = """
local jobs, index = KEYS[1], KEYS[2]
local now, retention, log_max, job_ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', index, '-inf', tonumber(now) - tonumber(retention) * 1000)
local function accept(state, log, job, result, callback, starts, encoded, job_id, auth_id, id)
  if starts == '1' then
    if redis.call('HSETNX', state, 'accepted_at', now) == 1 then
      redis.call('HSET', state, 'status', 'queued', 'callback', callback, 'auth_id', auth_id,
                 'updated_at', now)
      redis.call('EXPIRE', state, retention)
      redis.call('ZADD', index, now, id)
      if redis.call('EXISTS', job, result) == 0 then
        redis.call('PSETEX', job, job_ttl, encoded)
        redis.call('ZADD', jobs, now, job_id)
      end
      return 'queued'
    end
  end
  redis.call('RPUSH', log, callback)
  redis.call('LTRIM', log, -log_max, -1)
  redis.call('EXPIRE', log, retention)
  if starts == '1' then return 'duplicate' end
  return 'recorded'
end
local outcomes = {}
for i = 0, (#KEYS - 2) / 4 - 1 do
  local k, a = 3 + 4*i, 5 + 6*i
  local ok, outcome = pcall(accept, KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3],
                            ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4],
                            ARGV[a + 5])
  if ok then outcomes[i + 1] = outcome else outcomes[i + 1] = 'failed: ' .. tostring(outcome) end
end
return outcomes
"""

# Keep a transcription callback unless the recording belongs to another account than the one
# that signed it; wake the recording's collector if it waits (`ZADD XX`: only if queued).
# KEYS: state, transcription, arq queue. ARGV: callback JSON, signer, retention (s), collector
# job id, now (ms). Returns the owner's auth id when it refuses, else "".
SAVE_TRANSCRIPTION = """
local owner = redis.call('HGET', KEYS[1], 'auth_id')
if owner and owner ~= ARGV[2] then return owner end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
redis.call('ZADD', KEYS[3], 'XX', ARGV[5], ARGV[4])
return ''
"""


# A final recording keeps in Redis only what de-duplication and look-ups need: its payloads
# (Plivo's Recording object, the callback, the events' bodies, the transcription callback) are
# in the archive by then. It is written with the final status, in one step. KEYS: state,
# transcription. ARGV: now (ms), the number of event types, the event types, then the final
# fields as name, value pairs.
# The hash is written anew: once it held long values Redis keeps it in its large encoding, and
# what is left fits the compact one (a few hundred bytes instead of over a kilobyte).
FINISH = """
local types = tonumber(ARGV[2])
redis.call('HDEL', KEYS[1], 'recording', 'callback')
for i = 3, 2 + types do redis.call('HDEL', KEYS[1], 'event:' .. ARGV[i]) end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'archived_at', ARGV[1], 'updated_at', ARGV[1])
for i = 3 + types, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local ttl = redis.call('PTTL', KEYS[1])
local kept = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(kept))
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""


class Status(StrEnum):
    """Where a recording is in the pipeline (its state's `status`)."""

    QUEUED = "queued"
    DETAILS_FETCHED = "details_fetched"
    TRANSCRIBING = "transcribing"
    TRANSCRIBED = "transcribed"
    FAILED = "failed"
    IGNORED = "ignored"  # made before the retention window: a replay, never processed


FINAL = (Status.TRANSCRIBED, Status.FAILED, Status.IGNORED)


class Outcome(StrEnum):
    QUEUED = "queued"  # first sight of a finished recording: its pipeline starts
    DUPLICATE = "duplicate"  # the recording was already accepted
    RECORDED = "recorded"  # a progress event: logged, nothing to do yet
    FAILED = "failed"  # Redis refused this one callback (logged); the others are unaffected


class ForeignRecording(Exception):
    """A transcription callback signed by another account than the recording's owner."""


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


def _outcome(callback: RecordingCallback, raw: str) -> Outcome:
    if raw.startswith("failed"):
        log.error("callback not stored: recording_id=%s %s", callback.recording_id, raw)
        return Outcome.FAILED
    return Outcome(raw)


INDEX_KEY = "rr:recordings"  # ZSET: recording id -> accepted at (ms), within the retention


def recording_key(recording_id: str) -> str:
    return f"rr:recording:{recording_id}"


class RecordingStore:
    """The recordings' state in Redis."""

    def __init__(self, redis: Redis, retention_days: int) -> None:
        self.redis = redis
        self.retention_seconds = retention_days * 86_400
        self._accept_script = Script(redis, ACCEPT)
        self._accept = Batcher(self._accept_batch)
        self._finish = redis.register_script(FINISH)
        self._save_transcription = redis.register_script(SAVE_TRANSCRIPTION)

    async def accept(self, callback: RecordingCallback) -> Outcome:
        """Log a recording callback and, the first time a recording is ready, queue its job."""
        return await self._accept(callback)

    async def _accept_batch(self, callbacks: list[RecordingCallback]) -> list[Outcome]:
        now_ms = int(time.time() * 1000)
        keys: list[str] = [queue.QUEUE, INDEX_KEY]
        args: list[str | int | bytes] = [
            now_ms,
            self.retention_seconds,
            CALLBACK_LOG_MAX,
            queue.JOB_TTL_MS,
        ]
        for callback in callbacks:
            key = recording_key(callback.recording_id)
            job_id = queue.job_id(queue.PROCESS_RECORDING, callback.recording_id)
            keys += [key, f"{key}:callbacks", queue.job_key(job_id), queue.result_key(job_id)]
            args += [
                callback.model_dump_json(),
                "1" if callback.starts_pipeline else "0",
                queue.encode_job(queue.PROCESS_RECORDING, (callback.recording_id,), now_ms),
                job_id,
                callback.auth_id,
                callback.recording_id,
            ]
        outcomes = await self._accept_script(keys, args)
        assert isinstance(outcomes, list)
        return [
            _outcome(callback, raw.decode())
            for callback, raw in zip(callbacks, outcomes, strict=True)
        ]

    async def aclose(self) -> None:
        await self._accept_script.aclose()

    async def save_transcription(self, callback: TranscriptionCallback) -> None:
        """Keep Plivo's transcription callback, and wake the recording's collector if it waits.

        The collector is an arq job deferred until its next poll; moving its score to now makes
        a worker take it at once. `ForeignRecording` if the recording belongs to an account
        other than the one that signed the callback: nothing is kept.
        """
        key = recording_key(callback.recording_id)
        collector = queue.job_id(queue.COLLECT_TRANSCRIPTION, callback.recording_id)
        owner = await self._save_transcription(
            keys=[key, f"{key}:transcription", queue.QUEUE],
            args=[
                callback.model_dump_json(),
                callback.auth_id,
                self.retention_seconds,
                collector,
                int(time.time() * 1000),
            ],
        )
        if owner:
            raise ForeignRecording(owner.decode())

    async def transcription_callback(self, recording_id: str) -> TranscriptionCallback | None:
        raw = await self.redis.get(f"{recording_key(recording_id)}:transcription")
        return None if raw is None else TranscriptionCallback.model_validate_json(raw)

    async def state(self, recording_id: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(recording_key(recording_id))  # type: ignore[misc]
        if not raw:
            return None
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def update(self, recording_id: str, **fields: str | int | float) -> None:
        fields["updated_at"] = int(time.time() * 1000)
        await self.redis.hset(recording_key(recording_id), mapping=fields)  # type: ignore[misc]

    async def add_requests(self, recording_id: str, count: int) -> None:
        if count:
            await self.redis.hincrby(recording_key(recording_id), "plivo_requests", count)  # type: ignore[misc]

    async def keep_event(self, recording_id: str, kind: str, body: str) -> str:
        """Keep the body of the recording's `kind` event, unless one is kept already: the
        body that is kept (every retry and replay sends the same bytes)."""
        key = recording_key(recording_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, f"event:{kind}", body)
            pipe.hget(key, f"event:{kind}")
            _, kept = await pipe.execute()
        return str(kept.decode())

    async def finish(self, recording_id: str, **final: str | int) -> None:
        """Write the recording's `final` fields (its status) and forget what the archive now
        holds (`FINISH`), in one step; marks the recording archived."""
        key = recording_key(recording_id)
        now = int(time.time() * 1000)
        pairs = [str(item) for field in final.items() for item in field]
        await self._finish(
            keys=[key, f"{key}:transcription"],
            args=[now, len(EVENT_TYPES), *EVENT_TYPES, *pairs],
        )

    async def attempts(self, recording_id: str) -> list[str]:
        """The webhook attempts made for the recording's events (`service.deliveries`)."""
        raw = await self.redis.lrange(recording_attempts_key(recording_id), 0, -1)  # type: ignore[misc]
        return [item.decode() for item in raw]

    async def recent(
        self, since_ms: float, until_ms: float, offset: int, count: int
    ) -> tuple[list[tuple[str, dict[str, str]]], int]:
        """Recordings accepted in [since, until], newest first: `count` of them after `offset`
        with a few fields of their state each, and how many there are in all."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrevrangebyscore(INDEX_KEY, until_ms, since_ms, start=offset, num=count)
            pipe.zcount(INDEX_KEY, since_ms, until_ms)
            ids, total = await pipe.execute()
        fields = ("status", "accepted_at", "updated_at", "last_error", "archived_at")
        async with self.redis.pipeline(transaction=False) as pipe:
            for recording_id in ids:
                pipe.hmget(recording_key(recording_id.decode()), list(fields))
            rows = await pipe.execute()
        found = []
        for recording_id, values in zip(ids, rows, strict=True):
            state = {f: v.decode() for f, v in zip(fields, values, strict=True) if v is not None}
            if state:  # expired meanwhile: gone
                found.append((recording_id.decode(), state))
        return found, int(total)

    async def callbacks(self, recording_id: str) -> list[str]:
        raw = await self.redis.lrange(f"{recording_key(recording_id)}:callbacks", 0, -1)  # type: ignore[misc]
        return [item.decode() for item in raw]
