"""Erasures in Redis: the tombstone that erases a recording from the relay's own memory at once
(`scripts/erase.lua`), and each erasure's progress while its job runs (`workers.erasure`).
Keys: `service.storage.keys`.

A tombstone is the recording's state replaced by a few ids (status `erased`, the erasure, why,
when, its archive day and account), kept `RECORDING_RETENTION_DAYS` from the erasure: while it
is there no callback, sweep or backfill brings the recording back (`scripts/accept.lua`), no
pipeline step writes (`scripts/write_state.lua`), and nothing but `recording.erased` is queued
for it (`scripts/fan_out.lua`). After, Plivo no longer holds the recording, so no sweep or
backfill can find it, and a replayed callback is for a recording older than the relay's memory.
"""

from __future__ import annotations

import json
import time
from typing import Any

from arq.constants import job_key_prefix, retry_key_prefix
from redis.asyncio import Redis

from service.domain.erasure import Erasure, Progress, Reason
from service.domain.events import ERASED
from service.storage import jobs, keys, lua
from service.storage.deliveries import CODES, ERASED_CODE
from service.storage.recordings import event_field

ERASE = lua.source("erase")
ERASURE_DAYS = 30  # Redis keeps an ended erasure's progress this long (the audit, for ever)
RECENT = 100  # erasures `rr:erasures` lists
# The codes of the events an erasure drops (all but its own `recording.erased`).
DROPPED_CODES = "".join(code for code in CODES.values() if code != ERASED_CODE)


def _fields(erasure: Erasure) -> list[str]:
    """The erasure as its hash keeps it: name, value, name, value, ..."""
    return [str(item) for pair in _mapping(erasure).items() for item in pair]


def _mapping(erasure: Erasure) -> dict[str, str]:
    dumped = erasure.model_dump(mode="json", exclude_none=True)
    return {name: str(value) for name, value in dumped.items()}


def _parsed(raw: dict[bytes, bytes]) -> Erasure:
    return Erasure.model_validate({k.decode(): v.decode() for k, v in raw.items()})


class ErasureStore:
    """Tombstones and erasures' progress."""

    def __init__(self, redis: Redis, retention_days: int) -> None:
        self.redis = redis
        self.tombstone_ms = retention_days * 86_400_000
        self._erase = redis.register_script(ERASE)

    async def tombstone(
        self,
        recording_id: str,
        erasure_id: str,
        reason: Reason,
        day: str,
        auth_id: str,
        create: Erasure | None = None,
    ) -> tuple[str, bool]:
        """Erase the recording from Redis (see the module); with `create`, also create that
        erasure, with this recording to erase, and queue its job, in the same step. The
        erasure the recording is erased by (an earlier one's, if it was), and whether this
        call erased it."""
        now = int(time.time() * 1000)
        job = jobs.job_id(jobs.RUN_ERASURE, erasure_id) if create else ""
        encoded = jobs.encode_job(jobs.RUN_ERASURE, (erasure_id,), now) if create else b""
        dropped = [jobs.job_id(f, recording_id) for f in jobs.PIPELINE]
        found = await self._erase(
            keys=[
                keys.recording(recording_id),
                keys.recording_callbacks(recording_id),
                keys.recording_transcription(recording_id),
                jobs.QUEUE,
                keys.SUBSCRIPTIONS,
                keys.erasure(erasure_id),
                keys.erasure_todo(erasure_id),
                keys.ERASURES,
            ],
            args=[
                erasure_id,
                reason.value,
                now,
                day,
                auth_id,
                self.tombstone_ms,
                keys.PENDING_PREFIX,
                keys.QUEUE_PREFIX,
                keys.FAILED_PREFIX,
                keys.BODY_PREFIX,
                DROPPED_CODES,
                job_key_prefix,
                retry_key_prefix,
                job,
                encoded,
                jobs.JOB_TTL_MS,
                keys.WAKE_JOBS,
                len(dropped),
                *dropped,
                *(_fields(create) if create else []),
            ],
        )
        by, erased = found
        return by.decode(), bool(erased)

    async def start(self, erasure: Erasure) -> None:
        """Create an erasure (its recordings are found by its job) and queue its job."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.erasure(erasure.id), mapping=_mapping(erasure))
            pipe.zadd(keys.ERASURES, {erasure.id: erasure.requested_at})
            pipe.zremrangebyrank(keys.ERASURES, 0, -RECENT - 1)
            await pipe.execute()
        await jobs.enqueue(self.redis, jobs.RUN_ERASURE, erasure.id)

    async def get(self, erasure_id: str) -> Erasure | None:
        raw = await self.redis.hgetall(keys.erasure(erasure_id))  # type: ignore[misc]
        return _parsed(raw) if raw else None

    async def listed(self, erasure_id: str) -> bool:
        """Whether the erasure's recordings have been found (its `todo` is whole)."""
        return bool(await self.redis.hexists(keys.erasure(erasure_id), "listed"))  # type: ignore[misc]

    async def add_todo(self, erasure: Erasure, found: dict[str, str]) -> None:
        """The recordings the erasure erases (`day|account` each), found; saved with its
        count, in one step."""
        async with self.redis.pipeline(transaction=True) as pipe:
            if found:
                pipe.hset(keys.erasure_todo(erasure.id), mapping=found)
            pipe.hset(keys.erasure(erasure.id), mapping={"found": len(found), "listed": 1})
            await pipe.execute()
        erasure.found = len(found)

    async def todo(self, erasure_id: str) -> dict[str, tuple[str, str]]:
        """Recording -> (archive day, account) of every recording the erasure erases."""
        raw = await self.redis.hgetall(keys.erasure_todo(erasure_id))  # type: ignore[misc]
        found = {}
        for recording_id, value in raw.items():
            day, _, account = value.decode().partition("|")
            found[recording_id.decode()] = (day, account)
        return found

    async def outcomes(self, erasure_id: str) -> dict[str, str]:
        """Recording -> its outcome's JSON, for those done."""
        raw = await self.redis.hgetall(keys.erasure_outcomes(erasure_id))  # type: ignore[misc]
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def results(self, erasure_id: str) -> list[dict[str, Any]]:
        """The outcomes of those done, in the order they were done."""
        outcomes = [json.loads(o) for o in (await self.outcomes(erasure_id)).values()]
        return sorted(outcomes, key=lambda o: (o["at"], o["recording_id"]))

    async def record_outcome(self, erasure_id: str, outcome: dict[str, Any]) -> None:
        """One recording's outcome (`recording_id`, `outcome`, `at`, and its steps')."""
        key = keys.erasure_outcomes(erasure_id)
        await self.redis.hset(key, outcome["recording_id"], json.dumps(outcome))  # type: ignore[misc]

    async def save(self, erasure: Erasure) -> None:
        """The erasure's counts and status; once it has ended, its keys lapse in
        `ERASURE_DAYS`."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.erasure(erasure.id), mapping=_mapping(erasure))
            if erasure.status != Progress.RUNNING:
                for key in (
                    keys.erasure(erasure.id),
                    keys.erasure_todo(erasure.id),
                    keys.erasure_outcomes(erasure.id),
                ):
                    pipe.expire(key, ERASURE_DAYS * 86_400)
            await pipe.execute()

    async def recent(self, count: int = 20) -> list[Erasure]:
        """The latest erasures, newest first."""
        ids = await self.redis.zrevrange(keys.ERASURES, 0, count - 1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for erasure_id in ids:
                pipe.hgetall(keys.erasure(erasure_id.decode()))
            found = await pipe.execute()
        return [_parsed(raw) for raw in found if raw]

    async def keep_event(self, recording_id: str, body: str) -> str:
        """Keep `recording.erased`'s body in the tombstone (replays send the same bytes); the
        body kept."""
        key, field = keys.recording(recording_id), event_field(ERASED)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, field, body)
            pipe.hget(key, field)
            _, kept = await pipe.execute()
        return body if kept is None else str(kept.decode())

    async def take_retention_turn(self, every: float) -> bool:
        """Whether this worker runs the retention sweep now (no other did within `every` s)."""
        taken = await self.redis.set(keys.RETENTION_LOCK, "1", nx=True, px=int(every * 1000))
        return bool(taken)
