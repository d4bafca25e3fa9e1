"""What the relay keeps in Redis about each recording, and the scripts that change it atomically.

Keys, all under `rr:recording:{recording_id}`:
- the hash itself: the pipeline state (`status`, `accepted_at`, the callback that started it
  as `callback`, ...);
- `:callbacks`: every other callback received for the recording (duplicates, MultiPartyCall
  progress events), newest last, capped;
- `:transcription`: Plivo's transcription callback, once it has come.

While a recording is in flight its hash also holds Plivo's Recording object (`recording`) and
each event's body (`event:<type>`); once it is final they are in the archive
(`service.storage.archive`) and `finish` removes them, leaving a few hundred bytes.

Accepting a callback is one script: log it, claim the recording, queue its job. Either all of it
happens or none does, and a recording is claimed once however often Plivo repeats itself.
Concurrent callbacks share one script call (`service.storage.batch`), which is what lets one web
process take thousands a second.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from service.domain.callbacks import RecordingCallback, TranscriptionCallback, is_recording_id
from service.domain.recording import PlivoRecording
from service.settings import Settings
from service.storage import connections, jobs, keys, lua
from service.storage.batch import Batcher
from service.storage.script import Script

CALLBACK_LOG_MAX = 50
INDEX_TRIM_EVERY_MS = 60_000  # how often the accept script trims the index of old recordings
log = logging.getLogger("recording_relay.store")

ACCEPT = lua.source("accept")  # scripts/accept.lua
SAVE_TRANSCRIPTION = lua.source("save_transcription")  # scripts/save_transcription.lua
FINISH = lua.source("finish")  # scripts/finish.lua
WRITE_STATE = lua.source("write_state")  # scripts/write_state.lua


class Status(StrEnum):
    """Where a recording is in the pipeline (its state's `status`)."""

    QUEUED = "queued"
    DETAILS_FETCHED = "details_fetched"
    TRANSCRIBING = "transcribing"
    TRANSCRIBED = "transcribed"
    FAILED = "failed"
    IGNORED = "ignored"  # made before the retention window: a replay, never processed
    NOT_TRANSCRIBED = "not_transcribed"  # backfilled with --no-transcribe: archived, announced
    ERASED = "erased"  # a tombstone: erased everywhere (`service.storage.erasures`)


FINAL = (
    Status.TRANSCRIBED,
    Status.FAILED,
    Status.IGNORED,
    Status.NOT_TRANSCRIBED,
    Status.ERASED,
)
# What Redis keeps of a final recording, for de-duplication, the list and its filters: a few
# short fields (bench/memory). The rest is in the archive (`state.json`).
FINAL_FIELDS = ("status", "accepted_at", "archived_at", "source", "call_uuid", "last_error")


def event_field(kind: str) -> str:
    """The state's field that keeps the body of the recording's `kind` event."""
    return f"event:{kind}"


STEPS = (
    "accepted_at",
    "details_at",
    "transcription_requesting",
    "transcription_requested_at",
    "transcribed_at",
    "audio_archived_at",
    "failed_at",
    "archived_at",
    "deleted_at",
    "erased_at",
    "updated_at",
)


@dataclass(frozen=True)
class AudioCopy:
    """One archived copy of a recording's audio (`audio.mp3`, `audio.original.mp3`, ...).

    Kept in the state as field `audio:<name>` = `<size>:<SHA-256, base64url>`: under 64 bytes,
    so a final state stays in Redis's compact hash encoding (bench/memory)."""

    name: str
    size: int
    sha256: str  # hex

    def field(self) -> tuple[str, str]:
        digest = base64.urlsafe_b64encode(bytes.fromhex(self.sha256)).rstrip(b"=").decode()
        return f"audio:{self.name}", f"{self.size}:{digest}"

    @classmethod
    def parse(cls, name: str, value: str) -> AudioCopy:
        size, _, digest = value.partition(":")
        raw = base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4))
        return cls(name, int(size), raw.hex())


@dataclass
class RecordingState:
    """A recording's state, as its hash in Redis holds it (`keys.recording`), typed.

    Each step's time is epoch ms, or None before the step. `callback` (the recording callback),
    `recording` (Plivo's Recording object) and `events` (each event's body) are held while the
    recording is in flight; once it is final they are in the archive.
    """

    recording_id: str
    status: Status
    auth_id: str = ""  # the account (or subaccount) that owns it
    accepted_at: int | None = None
    details_at: int | None = None
    transcription_requesting: int | None = None  # set before the one transcription is bought
    transcription_requested_at: int | None = None
    transcribed_at: int | None = None
    audio_archived_at: int | None = None
    failed_at: int | None = None
    archived_at: int | None = None
    deleted_at: int | None = None
    erased_at: int | None = None
    updated_at: int | None = None
    last_error: str | None = None
    source: str = "callback"  # how the relay learned of it: callback, reconciliation, backfill
    call_uuid: str | None = None  # once the callback or Plivo's Recording object gave it
    plivo_requests: int = 0
    callback: RecordingCallback | None = None  # the callback that started it
    recording: PlivoRecording | None = None  # once fetched from Plivo
    audio: list[AudioCopy] = field(default_factory=list)  # the archived copies of its audio
    events: dict[str, str] = field(default_factory=dict)  # event type -> body, in flight
    emitted: set[str] = field(default_factory=set)  # event types sent
    erasure_id: str | None = None  # erased: by which erasure, why, and its archive day
    erasure_reason: str | None = None
    day: str | None = None

    @classmethod
    def from_hash(cls, recording_id: str, raw: dict[str, str]) -> RecordingState:
        state = cls(recording_id, Status(raw.get("status", Status.QUEUED)))
        for step in STEPS:
            if step in raw:
                setattr(state, step, int(float(raw[step])))
        state.auth_id = raw.get("auth_id", "")
        state.last_error = raw.get("last_error")
        state.source = raw.get("source", "callback")
        state.call_uuid = raw.get("call_uuid") or None
        state.plivo_requests = int(raw.get("plivo_requests", 0))
        state.erasure_id = raw.get("erasure_id")
        state.erasure_reason = raw.get("erasure_reason")
        state.day = raw.get("day")
        if "callback" in raw:
            state.callback = RecordingCallback.model_validate_json(raw["callback"])
        if "recording" in raw:
            state.recording = PlivoRecording.model_validate_json(raw["recording"])
        for name, value in raw.items():
            kind, colon, rest = name.partition(":")
            if colon and kind == "event":
                state.events[rest] = value
            elif colon and kind == "emitted":
                state.emitted.add(rest)
            elif colon and kind == "audio":
                state.audio.append(AudioCopy.parse(rest, value))
        state.audio.sort(key=lambda copy: copy.name)  # audio.mp3 before audio.original.mp3
        return state

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    @property
    def trimmed(self) -> bool:
        """Whether this is what Redis keeps of a final recording (`FINAL_FIELDS`): the rest is
        the archive's `state.json` (`service.storage.history.History.full`)."""
        return self.archived and not self.auth_id

    def document(self) -> dict[str, object]:
        """The state as the archive keeps it once the recording is final (`state.json`): all
        but the payloads, which are documents of their own."""
        return {
            "recording_id": self.recording_id,
            "status": self.status.value,
            "auth_id": self.auth_id,
            **{step: getattr(self, step) for step in STEPS},
            "last_error": self.last_error,
            "source": self.source,
            "call_uuid": self.call_uuid,
            "plivo_requests": self.plivo_requests,
            "audio": [{"name": c.name, "size": c.size, "sha256": c.sha256} for c in self.audio],
            "emitted": sorted(self.emitted),
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> RecordingState:
        state = cls(document["recording_id"], Status(document["status"]))
        for step in STEPS:
            setattr(state, step, document.get(step))
        state.auth_id = document.get("auth_id", "")
        state.last_error = document.get("last_error")
        state.source = document.get("source", "callback")
        state.call_uuid = document.get("call_uuid")
        state.plivo_requests = int(document.get("plivo_requests", 0))
        state.audio = [AudioCopy(c["name"], c["size"], c["sha256"]) for c in document["audio"]]
        state.emitted = set(document.get("emitted", []))
        return state


class Outcome(StrEnum):
    """What accepting a callback came to."""

    QUEUED = "queued"  # first sight of a finished recording: its pipeline starts
    DUPLICATE = "duplicate"  # the recording was already accepted
    RECORDED = "recorded"  # a progress event: logged, nothing to do yet
    ERASED = "erased"  # the recording was erased: nothing is kept, nothing brought back
    FAILED = "failed"  # Redis refused this one callback (logged); the others are unaffected


class ForeignRecording(Exception):
    """A transcription callback signed by another account than the recording's owner."""


class Erased(Exception):
    """The recording was erased: its state takes no more writes, and its pipeline stops."""


def connect(settings: Settings) -> Redis:
    """The web process's client (`service.storage.connections`): short timeouts (Plivo must
    hear back fast) and one retry on a dropped link."""
    return connections.web(
        settings,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[ConnectionError],
    )


def _outcome(callback: RecordingCallback, raw: str) -> Outcome:
    if raw.startswith("failed"):
        log.error("callback not stored: recording_id=%s %s", callback.recording_id, raw)
        return Outcome.FAILED
    return Outcome(raw)


class RecordingStore:
    """The recordings' state in Redis."""

    def __init__(self, redis: Redis, retention_days: int) -> None:
        self.redis = redis
        self.retention_seconds = retention_days * 86_400
        self._accept_script = Script(redis, ACCEPT)
        self._index_trimmed = 0  # when this process last had the index trimmed (ms)
        self._accept = Batcher(self._accept_batch)
        self._finish = redis.register_script(FINISH)
        self._save_transcription = redis.register_script(SAVE_TRANSCRIPTION)
        self._write_state = redis.register_script(WRITE_STATE)

    async def accept(self, callback: RecordingCallback) -> Outcome:
        """Log a recording callback and, the first time a recording is ready, queue its job."""
        return await self._accept(callback)

    async def _accept_batch(self, callbacks: list[RecordingCallback]) -> list[Outcome]:
        now_ms = int(time.time() * 1000)
        trim = now_ms - self._index_trimmed >= INDEX_TRIM_EVERY_MS
        if trim:
            self._index_trimmed = now_ms
        names: list[str] = [jobs.QUEUE, keys.RECORDINGS_INDEX]
        args: list[str | int | bytes] = [
            now_ms,
            self.retention_seconds,
            CALLBACK_LOG_MAX,
            jobs.JOB_TTL_MS,
            keys.WAKE_JOBS,
            "1" if trim else "0",
        ]
        for callback in callbacks:
            recording_id = callback.recording_id
            job_id = jobs.job_id(jobs.PROCESS_RECORDING, recording_id)
            names += [
                keys.recording(recording_id),
                keys.recording_callbacks(recording_id),
                jobs.job_key(job_id),
            ]
            args += [
                callback.model_dump_json(),
                "1" if callback.starts_pipeline else "0",
                jobs.encode_job(jobs.PROCESS_RECORDING, (recording_id,), now_ms),
                job_id,
                callback.auth_id,
                recording_id,
            ]
        outcomes = await self._accept_script(names, args)
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
        recording_id = callback.recording_id
        collector = jobs.job_id(jobs.COLLECT_TRANSCRIPTION, recording_id)
        owner = await self._save_transcription(
            keys=[
                keys.recording(recording_id),
                keys.recording_transcription(recording_id),
                jobs.QUEUE,
            ],
            args=[
                callback.model_dump_json(),
                callback.auth_id,
                self.retention_seconds,
                collector,
                int(time.time() * 1000),
                keys.WAKE_JOBS,
            ],
        )
        if owner:
            raise ForeignRecording(owner.decode())

    async def transcription_callback(self, recording_id: str) -> TranscriptionCallback | None:
        raw = await self.redis.get(keys.recording_transcription(recording_id))
        return None if raw is None else TranscriptionCallback.model_validate_json(raw)

    async def state(self, recording_id: str) -> RecordingState | None:
        """The recording's state; None for one the relay does not know, or for a string that
        is no recording id (it could name another key)."""
        if not is_recording_id(recording_id):
            return None
        raw = await self.redis.hgetall(keys.recording(recording_id))  # type: ignore[misc]
        if not raw:
            return None
        decoded = {k.decode(): v.decode() for k, v in raw.items()}
        return RecordingState.from_hash(recording_id, decoded)

    # -- the pipeline's writes, one a step ---------------------------------------------------

    async def note_error(self, recording_id: str, error: str) -> None:
        """What went wrong last (the recording goes on, or waits to)."""
        await self._write(recording_id, last_error=error)

    async def ignore(self, recording_id: str, reason: str) -> None:
        """The recording is not for the relay to process (`Status.IGNORED`)."""
        await self._write(recording_id, status=Status.IGNORED, last_error=reason)

    async def details_fetched(self, state: RecordingState, recording: PlivoRecording) -> None:
        """Plivo's Recording object is in (`Status.DETAILS_FETCHED`), with the source and call
        that the dashboard's filters and search read."""
        callback = state.callback
        call_uuid = recording.call_uuid or (callback.call_uuid if callback else None) or ""
        await self._write(
            state.recording_id,
            recording=recording.model_dump_json(exclude_unset=True),
            details_at=now_ms(),
            status=Status.DETAILS_FETCHED,
            source=str(callback.origin if callback else "callback"),
            call_uuid=call_uuid,
        )
        state.recording = recording

    async def mark_transcription(self, recording_id: str, mark: int) -> None:
        """A transcription is about to be bought (never cleared: see `workers.pipeline`)."""
        await self._write(recording_id, transcription_requesting=mark)

    async def transcription_requested(self, recording_id: str, at: int) -> None:
        """The one transcription is Plivo's to make (`Status.TRANSCRIBING`)."""
        await self._write(recording_id, transcription_requested_at=at, status=Status.TRANSCRIBING)

    async def audio_archived(self, state: RecordingState, copies: list[AudioCopy]) -> None:
        """The archive holds these copies of the audio, checked whole."""
        fields = dict(c.field() for c in copies)
        await self._write(state.recording_id, **fields, audio_archived_at=now_ms())
        state.audio = copies

    async def deleted_from_plivo(self, recording_id: str) -> None:
        """Plivo no longer holds the recording (the retention policy)."""
        await self._write(recording_id, deleted_at=now_ms())

    async def _write(self, recording_id: str, **fields: str | int) -> None:
        """Write to the state; `Erased` (and nothing written) if the recording is erased."""
        fields["updated_at"] = now_ms()
        pairs = [item for pair in fields.items() for item in pair]
        if not await self._write_state([keys.recording(recording_id)], ["hset", *pairs]):
            raise Erased(recording_id)

    async def add_requests(self, recording_id: str, count: int) -> None:
        if count:
            await self.redis.hincrby(keys.recording(recording_id), "plivo_requests", count)  # type: ignore[misc]

    async def keep_event(self, recording_id: str, kind: str, body: str) -> str:
        """Keep the body of the recording's `kind` event, unless one is kept already: the
        body that is kept (every retry and replay sends the same bytes)."""
        kept = await self._write_state(
            [keys.recording(recording_id)], ["hsetnx", event_field(kind), body]
        )
        if not kept:
            raise Erased(recording_id)
        return str(kept.decode())

    async def finish(self, state: RecordingState) -> None:
        """`state` is final and its `document()` is in the archive: keep in Redis only its
        `FINAL_FIELDS` (and forget its transcription callback), in one step."""
        kept = {name: value for name, value in state.document().items() if name in FINAL_FIELDS}
        if kept.get("source") == "callback":
            del kept["source"]  # the usual source: said by its absence
        pairs = [str(item) for field in kept.items() if field[1] is not None for item in field]
        lapses = (state.accepted_at or int(time.time() * 1000)) + self.retention_seconds * 1000
        finished = await self._finish(
            keys=[
                keys.recording(state.recording_id),
                keys.recording_transcription(state.recording_id),
            ],
            args=[max(1, lapses - int(time.time() * 1000)), *pairs],
        )
        if not finished:
            raise Erased(state.recording_id)

    async def recent(
        self, since_ms: float, until_ms: float, offset: int, count: int
    ) -> tuple[list[RecordingState], int]:
        """Recordings accepted in [since, until], newest first: `count` of them after `offset`
        with a few fields of their state each, and how many there are in all."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrevrangebyscore(
                keys.RECORDINGS_INDEX, until_ms, since_ms, start=offset, num=count
            )
            pipe.zcount(keys.RECORDINGS_INDEX, since_ms, until_ms)
            ids, total = await pipe.execute()
        fields = (
            "status",
            "accepted_at",
            "updated_at",
            "last_error",
            "archived_at",
            "source",
            "call_uuid",
            "erased_at",
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            for recording_id in ids:
                pipe.hmget(keys.recording(recording_id.decode()), list(fields))
            rows = await pipe.execute()
        found = []
        for recording_id, values in zip(ids, rows, strict=True):
            state = {f: v.decode() for f, v in zip(fields, values, strict=True) if v is not None}
            if state:  # expired meanwhile: gone
                found.append(RecordingState.from_hash(recording_id.decode(), state))
        return found, int(total)

    async def erased(self, recording_ids: list[str]) -> set[str]:
        """Which of these recordings are erased."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for recording_id in recording_ids:
                pipe.hget(keys.recording(recording_id), "status")
            statuses = await pipe.execute()
        return {
            recording_id
            for recording_id, status in zip(recording_ids, statuses, strict=True)
            if status == Status.ERASED.encode()
        }

    async def callbacks(self, recording_id: str) -> list[str]:
        raw = await self.redis.lrange(keys.recording_callbacks(recording_id), 0, -1)  # type: ignore[misc]
        return [item.decode() for item in raw]


def now_ms() -> int:
    """The time as the state keeps it: epoch milliseconds."""
    return int(time.time() * 1000)
