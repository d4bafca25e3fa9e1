"""What happens to an accepted recording: details, transcription, events.

Two arq jobs per recording, each safe to run again at any point (arq delivers at least once, and
a worker may be killed mid-job); what is done is recorded in the recording's state in Redis
before the next step starts:

1. `process`: fetch the recording's details (`recording.completed`), then ask Plivo for a
   transcription, once: `transcription_requesting` is written before the request (once its
   rate-limit slot is taken, and the request goes only once Redis has answered that it kept
   it) and never cleared, so a re-run after a crash never pays twice (it waits for that
   transcription instead, until `TRANSCRIPTION_DEADLINE`). Skipped when the customer's
   `<Record>` already transcribes, or Plivo's transcription callback came first. Then it
   queues `collect`.
2. `collect`: runs when Plivo's transcription callback arrives (the web process moves the job
   to now) or else at the next poll of `TRANSCRIPTION_POLL_SCHEDULE`; between polls the job is
   deferred in the queue, holding no worker. It fetches what the callback did not carry and
   emits `recording.transcribed`, or `recording.failed` once `TRANSCRIPTION_DEADLINE` passes.

When Plivo has an outage (5xx, 429 or no answer after a request's own retries), the job runs
again later with backoff, for `PLIVO_OUTAGE_WINDOW` after the callback (`collect`: until its
deadline); a refusal (other 4xx) fails the recording at once.

On the happy path that is 4 Plivo requests: the recording, the transcription request, and the
`raw` and `diarized` transcripts (the callback carries the text itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import time
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol

from arq import Retry
from arq.connections import ArqRedis

from service.domain import events
from service.domain.callbacks import Origin, TranscriptionCallback
from service.domain.events import ArchiveData, ArchivedObject, EventData, Transcript
from service.domain.media_links import MediaLinks
from service.domain.urls import redacted
from service.logs import about
from service.metrics import Recorder
from service.plivo.client import (
    UNREACHABLE,
    NotFound,
    PlivoClient,
    PlivoError,
    audio_format,
    count_requests,
    take_count,
)
from service.settings import Settings
from service.storage import history, jobs
from service.storage.archive import Archive, ArchiveUnavailable, day_of
from service.storage.deliveries import Claimed, Deliveries
from service.storage.recordings import AudioCopy, RecordingState, RecordingStore, Status
from workers.redis_outage import LOST, redis_back

log = logging.getLogger("recording_relay.pipeline")


class Dispatch(Protocol):
    """Where deliveries the fan-out hands back are attempted (`workers.dispatcher`)."""

    holder: str  # the worker's name: what it is handed is held under it

    def room(self) -> int: ...

    def submit(self, deliveries: list[Claimed]) -> None: ...


MEDIA_CHUNK_BYTES = 1024 * 1024  # read from Plivo and handed to the store at a time


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        store: RecordingStore,
        plivo: PlivoClient,
        arq: ArqRedis,
        deliveries: Deliveries,
        archive: Archive,
        metrics: Recorder,
        dispatch: Dispatch,
        links: MediaLinks,
    ) -> None:
        self.dispatch = dispatch
        self.metrics = metrics
        self.deliveries = deliveries
        self.archive = archive
        self.settings = settings
        self.store = store
        self.plivo = plivo
        self.arq = arq
        self.links = links
        self.history = history.History(archive)
        base = settings.public_base_url
        self.transcription_callback_url = f"{base}/plivo/transcription" if base else None
        # Bounds the memory audio takes: a transfer holds one upload part at most.
        self.audio_transfers = asyncio.Semaphore(settings.audio_transfers)

    # -- the jobs ------------------------------------------------------------------------------

    async def process(self, recording_id: str, job_try: int = 1) -> str:
        state = await self.store.state(recording_id)
        if state is None or state.final:
            return "nothing to do"
        with count_requests():
            try:
                return await self._process(recording_id, state)
            except ArchiveUnavailable as error:  # nothing is lost: every write is repeated
                await self._retry_later(recording_id, None, error, job_try)
            except PlivoError as error:
                stage = "fetch_recording" if state.details_at is None else "request_transcription"
                accepted = (state.accepted_at or _now_ms()) / 1000
                if error.transient and time.time() - accepted < self.settings.plivo_outage_window:
                    await self._retry_later(recording_id, stage, error, job_try)
                await self.fail(recording_id, state, stage, error.message)
                return "failed"
            finally:
                await self.store.add_requests(recording_id, take_count())

    async def collect(self, recording_id: str, job_try: int) -> str:
        state = await self.store.state(recording_id)
        if state is None or state.final:
            return "nothing to do"
        with count_requests():
            try:
                return await self._collect(recording_id, state, job_try)
            except ArchiveUnavailable as error:  # retried at the next poll, as below
                await self._retry_later(recording_id, None, error, job_try, self._poll_in(job_try))
            except PlivoError as error:
                stage = "collect_transcription"
                if error.transient and not self._past_deadline(state):
                    # The collector's tries are mostly polls: an outage is retried at the next
                    # poll, not on a backoff grown by every poll before it.
                    await self._retry_later(
                        recording_id, stage, error, job_try, self._poll_in(job_try)
                    )
                await self.fail(recording_id, state, stage, error.message)
                return "failed"
            finally:
                await self.store.add_requests(recording_id, take_count())

    async def _retry_later(
        self,
        recording_id: str,
        stage: str | None,
        error: Exception,
        job_try: int,
        defer: float | None = None,
    ) -> NoReturn:
        """Plivo (beyond one request's retries) or the archive is having an outage: run the
        job again later (after `defer` seconds, or on a backoff by its tries). What is done is
        recorded, so nothing is lost or done twice."""
        if defer is None:
            defer = min(60.0, 2.0 ** (job_try - 1)) * random.uniform(0.8, 1.2)
        what = f"{stage}: {error}" if stage else str(error)
        await self.store.update(recording_id, last_error=f"{what} (retrying)")
        log.warning("recording_id=%s %s; trying again in %.0f s", recording_id, what, defer)
        raise Retry(defer=defer)

    async def _archive(self, state: RecordingState, name: str, doc: Any) -> None:
        """Write one of the recording's documents to the archive (`name` without `.json`)."""
        data = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
        await self.archive.put(f"{history.prefix(state)}/{name}.json", data)

    # -- the steps -----------------------------------------------------------------------------

    async def _process(self, recording_id: str, state: RecordingState) -> str:
        auth_id = state.auth_id
        callback = _callback(state)
        backfilled = callback.get("origin") == Origin.BACKFILL
        if state.details_at is None:
            details = await self._fetch(auth_id, recording_id)
            if not backfilled and self._older_than_retention(details):
                # A replayed callback without times of its own: the relay has forgotten this
                # recording, may have transcribed it already, and must not buy that again.
                reason = "made before the retention window (RECORDING_RETENTION_DAYS): ignored"
                await self.store.update(recording_id, status=Status.IGNORED, last_error=reason)
                self.metrics.count("relay_recordings_total", status=Status.IGNORED)
                log.warning(
                    "recording_id=%s %s",
                    recording_id,
                    reason,
                    extra=about(recording_id=recording_id),
                )
                return "ignored"
            recording = json.dumps(details)
            await self._archive(state, "callback", state.callback or "null")
            await self._archive(state, "recording", recording)
            # Its source and call for the dashboard's filters and search: small fields that
            # stay when the recording is final.
            call_uuid = details.get("call_uuid") or callback.get("call_uuid") or ""
            await self.store.update(
                recording_id,
                recording=recording,
                details_at=_now_ms(),
                status=Status.DETAILS_FETCHED,
                source=str(callback.get("origin", Origin.CALLBACK)),
                call_uuid=str(call_uuid),
            )
            state.recording = recording
        # Out of the step above: a run cut short between its write and the event (Redis lost
        # as it answered) sends the event on the re-run; once sent, `emit` sends it no more.
        await self.emit(recording_id, state, events.COMPLETED)
        if not callback.get("transcribe", True):  # a backfill that buys no transcription
            return await self._archive_only(recording_id, state)
        if state.transcription_requested_at is None:
            # A run before this one bought it, or may have (it died between the mark and the
            # request, or right after): Plivo is asked which.
            requested = state.transcription_requesting
            if requested is not None:
                requested = await self._bought_before(recording_id, auth_id, requested)
            if requested is None:
                requested = await self._transcription(recording_id, auth_id, backfilled)
            await self.store.update(
                recording_id, transcription_requested_at=requested, status=Status.TRANSCRIBING
            )
        if state.audio_archived_at is None:
            await self._archive_audio(state)
        first_poll = self.settings.transcription_poll_schedule[0]
        await jobs.enqueue_collector(self.arq, recording_id, defer=first_poll)
        return "transcribing"

    async def _transcription(self, recording_id: str, auth_id: str, backfilled: bool) -> int:
        """See that the recording is transcribed, once: Plivo's callback came first, or the
        customer's `<Record>` transcribes, or it is bought here. When that was decided (ms)."""
        if await self._transcription_callback(recording_id, auth_id) is not None:
            return _now_ms()
        # A backfilled recording may be older than the relay's memory: one Plivo already
        # transcribes (for the relay before, or anyone) is collected, not bought again.
        if backfilled and await self._transcribed_at_plivo(auth_id, recording_id):
            return _now_ms()
        if self.settings.plivo_auto_transcription:
            return _now_ms()
        mark = _now_ms()

        async def marking() -> None:
            # The mark goes in once the request's rate-limit slot is taken (the limiter's Redis
            # call can fail too), and the request goes only once Redis has said it kept the
            # mark: a mark whose answer was lost is written again when Redis is back.
            try:
                await self.store.update(recording_id, transcription_requesting=mark)
            except LOST:
                if not await redis_back(self.arq):
                    raise
                await self.store.update(recording_id, transcription_requesting=mark)

        await self.plivo.create_transcription(
            auth_id, recording_id, self.transcription_callback_url, before_sending=marking
        )
        return mark

    async def _bought_before(self, recording_id: str, auth_id: str, mark: int) -> int | None:
        """A run before this one marked the transcription as being bought and did not live to
        say that Plivo took the request. Whether Plivo has it: the mark's time if it does, None
        if the request never arrived (it is bought now).

        Plivo has it if its callback came, if it serves the transcription (ready or not), or
        if its List Transcriptions shows it. Plivo does not say whether it answers 404 or lists
        nothing while a transcription is running, so "never arrived" is decided only once the
        mark is `PLIVO_UNKNOWN_REQUEST_WAIT` old: until then the job waits."""
        if await self._transcription_callback(recording_id, auth_id) is not None:
            return mark
        if await self._transcribed_at_plivo(auth_id, recording_id):
            return mark
        listed = await self.plivo.transcriptions_page(auth_id)
        if any(t.get("recording_id") == recording_id for t in listed):
            return mark
        waited = time.time() - mark / 1000
        patience = self.settings.plivo_unknown_request_wait
        if waited < patience:
            raise Retry(defer=patience - waited)
        log.warning(
            "recording_id=%s: the transcription marked as being bought %.0f s ago never reached "
            "Plivo (a worker died before sending it); buying it now",
            recording_id,
            waited,
            extra=about(recording_id=recording_id),
        )
        return None

    async def _archive_only(self, recording_id: str, state: RecordingState) -> str:
        """A recording backfilled with `--no-transcribe`: its audio and documents archived and
        announced (`recording.archived`), and no transcription bought."""
        if state.audio_archived_at is None:
            await self._archive_audio(state)
        await self._announce_archive(state)
        await self._schedule_deletion(recording_id)
        await self._finish(state, Status.NOT_TRANSCRIBED)
        return "archived, not transcribed"

    async def _archive_audio(self, state: RecordingState) -> None:
        """Copy the recording's audio from Plivo to the archive, streamed (`audio.<format>`,
        and `audio.original.<format>` with `ARCHIVE_ORIGINAL`), each checked whole: the size
        Plivo announced, the size the store holds, and a SHA-256, recorded in the state."""
        recording = json.loads(state.recording or "{}")
        url = str(recording.get("recording_url") or "")
        extension = audio_format(recording)
        copies = []
        for original in (False, True) if self.settings.archive_original else (False,):
            name = f"audio.original.{extension}" if original else f"audio.{extension}"
            key = f"{history.prefix(state)}/{name}"
            try:
                async with (
                    self.audio_transfers,
                    self.plivo.media(state.auth_id, url, original) as answer,
                ):
                    announced = answer.headers.get("content-length")
                    size, sha256 = await self.archive.put_stream(
                        key, answer.aiter_bytes(MEDIA_CHUNK_BYTES)
                    )
            except NotFound:
                if original:
                    continue  # no pre-denoised copy: nothing to keep
                # Plivo knows the recording but not yet its media: wait, as for an outage.
                raise PlivoError(UNREACHABLE, "the recording's audio is not there yet") from None
            if announced is not None and announced.isdigit() and int(announced) != size:
                raise PlivoError(UNREACHABLE, f"{name}: {size} of {announced} bytes arrived")
            copies.append(AudioCopy(name, size, sha256))
        fields = dict(copy.field() for copy in copies)
        await self.store.update(state.recording_id, **fields, audio_archived_at=_now_ms())
        state.audio = copies
        log.info("audio archived: recording_id=%s %s", state.recording_id, copies)

    async def _fetch(self, auth_id: str, recording_id: str) -> dict[str, Any]:
        try:
            recording = await self.plivo.get_recording(auth_id, recording_id)
        except NotFound as error:
            raise PlivoError(404, f"recording not found: {error.message}") from None
        recording.pop("api_id", None)
        return recording

    def _older_than_retention(self, recording: dict[str, Any]) -> bool:
        try:
            added = datetime.fromisoformat(str(recording.get("add_time")))
        except ValueError:
            return False  # Plivo did not say: the callback's own times were checked on arrival
        if added.tzinfo is None:
            added = added.replace(tzinfo=UTC)
        age = time.time() - added.timestamp()
        return age > self.settings.recording_retention_days * 86_400

    async def _transcription_callback(
        self, recording_id: str, auth_id: str
    ) -> TranscriptionCallback | None:
        """Plivo's transcription callback for the recording, if its owner's account signed it
        (the web process refuses others; this also covers one that came before the recording's
        own callback)."""
        callback = await self.store.transcription_callback(recording_id)
        if callback is not None and callback.auth_id != auth_id:
            log.warning(
                "recording_id=%s: ignoring a transcription callback signed by another account",
                recording_id,
            )
            return None
        return callback

    async def _collect(self, recording_id: str, state: RecordingState, job_try: int) -> str:
        auth_id = state.auth_id
        callback = await self._transcription_callback(recording_id, auth_id)
        if callback is not None and callback.error:
            await self.fail(recording_id, state, "transcription", callback.error)
            return "failed"
        if callback is not None:
            main = _from_callback(callback)
        else:
            polled = await self._poll(auth_id, recording_id)
            if polled is None:
                return await self._wait(recording_id, state, job_try)
            main = polled
            if main.get("status") not in (None, "success"):
                reason = str(main.get("error") or f"transcription {main.get('status')}")
                await self.fail(recording_id, state, "transcription", reason)
                return "failed"
        raw = await self.plivo.get_transcription(auth_id, recording_id, "raw")
        diarized = await self.plivo.get_transcription(auth_id, recording_id, "diarized")
        for name, document in (("transcription", main), ("raw", raw), ("diarized", diarized)):
            document.pop("api_id", None)
            await self._archive(state, name, document)
        transcript = Transcript(
            transcription=main,
            raw=raw,
            diarized=diarized,
            cost=main.get("cost", raw.get("cost")),
            rate=main.get("rate", raw.get("rate")),
        )
        # The event and the request count are in before the status says it is done.
        await self.emit(recording_id, state, events.TRANSCRIBED, transcription=transcript)
        await self._announce_archive(state)
        await self._schedule_deletion(recording_id)  # before the end: a final one is not re-run
        await self._finish(state, Status.TRANSCRIBED, transcribed_at=_now_ms())
        if state.transcription_requested_at is not None:
            waited = time.time() - state.transcription_requested_at / 1000
            self.metrics.observe("relay_transcription_seconds", max(0.0, waited))
        return "transcribed"

    async def _transcribed_at_plivo(self, auth_id: str, recording_id: str) -> bool:
        """Whether Plivo has a transcription of the recording, ready or in progress."""
        try:
            await self.plivo.get_transcription(auth_id, recording_id, "transcription")
        except NotFound:
            return False
        return True

    async def _poll(self, auth_id: str, recording_id: str) -> dict[str, Any] | None:
        """Plivo's `transcription` result, or None while it is not ready."""
        try:
            document = await self.plivo.get_transcription(auth_id, recording_id, "transcription")
        except NotFound:
            return None
        if document.get("status") in ("in-progress", "pending", "processing"):
            return None
        return document

    async def _wait(self, recording_id: str, state: RecordingState, job_try: int) -> str:
        if self._past_deadline(state):
            deadline = self.settings.transcription_deadline
            await self.fail(
                recording_id, state, "transcription", f"deadline of {deadline:g} s passed"
            )
            return "failed"
        auth_id = state.auth_id
        if await self._transcription_callback(recording_id, auth_id) is not None:
            raise Retry(defer=0)  # it came while we polled: go again at once
        raise Retry(defer=self._poll_in(job_try))

    def _poll_in(self, job_try: int) -> float:
        schedule = self.settings.transcription_poll_schedule
        return schedule[min(job_try, len(schedule) - 1)]

    def _past_deadline(self, state: RecordingState) -> bool:
        requested = (state.transcription_requested_at or _now_ms()) / 1000
        return time.time() - requested > self.settings.transcription_deadline

    # -- retention ---------------------------------------------------------------------------

    async def _schedule_deletion(self, recording_id: str) -> None:
        days = self.settings.plivo_delete_after_days
        if days is None:
            return
        await jobs.enqueue(self.arq, jobs.DELETE_RECORDING, recording_id, defer=days * 86_400)

    async def delete(self, recording_id: str, job_try: int = 1) -> str:
        """Remove the recording and its transcription from Plivo (the retention policy), only
        once the archive holds a verified copy of its audio and documents."""
        found = await self.store.state(recording_id)
        if found is None or found.deleted_at is not None:
            return "nothing to do"
        try:
            state = await self.history.full(found)
            problem = await self._unverified(state)
        except ArchiveUnavailable as error:
            await self._retry_later(recording_id, "delete_recording", error, job_try)
        if problem is not None:
            reason = f"not deleted from Plivo: {problem}"
            await self.store.update(recording_id, last_error=reason)
            log.warning("recording_id=%s %s", recording_id, reason)
            return "kept"
        auth_id = state.auth_id
        with count_requests():
            try:
                for remove in (self.plivo.delete_transcription, self.plivo.delete_recording):
                    with contextlib.suppress(NotFound):  # already gone: what we wanted
                        await remove(auth_id, recording_id)
            except PlivoError as error:
                if not error.transient:
                    raise
                await self._retry_later(recording_id, "delete_recording", error, job_try)
            finally:
                await self.store.add_requests(recording_id, take_count())
        await self.store.update(recording_id, deleted_at=_now_ms())
        return "deleted"

    async def _unverified(self, state: RecordingState) -> str | None:
        """Why the archive's copy of the recording cannot stand in for Plivo's, or None."""
        if not state.archived:
            return "its documents are not all in the archive"
        if not state.audio:
            return "its audio is not in the archive"
        for copy in state.audio:
            key = f"{history.prefix(state)}/{copy.name}"
            if await self.archive.size(key) != copy.size:
                return f"the archive's {key} is missing or not the size copied"
        if await self.archive.size(f"{history.prefix(state)}/recording.json") is None:
            return "the archive's recording.json is missing"
        return None

    # -- events --------------------------------------------------------------------------------

    async def emit(
        self,
        recording_id: str,
        state: RecordingState,
        kind: events.EventType,
        transcription: Transcript | None = None,
        stage: str | None = None,
        reason: str | None = None,
        archive: ArchiveData | None = None,
    ) -> None:
        if kind in state.emitted:
            return
        body = state.events.get(kind)
        if body is None:
            await self.links.ready()
            callback = _callback(state)
            recording = json.loads(state.recording) if state.recording else None
            media = None
            if recording is not None:  # known to Plivo: its audio can be had
                media = self.links.link(recording_id, audio_format(recording))
            data = EventData(
                recording_id=recording_id,
                call_uuid=(recording or {}).get("call_uuid") or callback.get("call_uuid"),
                recording=recording,
                callback=callback["params"],
                transcription=transcription,
                stage=stage,
                reason=reason,
                archive=archive,
                source=callback.get("origin", Origin.CALLBACK),
                transcribe=callback.get("transcribe", True),
                media=media,
            )
            # Kept before it is archived or sent: a re-run after a crash sends the same bytes.
            body = await self.store.keep_event(
                recording_id, kind, events.make_event(kind, data).model_dump_json()
            )
            state.events[kind] = body
        await self._archive(state, f"events/{kind}", body)
        # Queued and marked emitted in one step; the subscribers with a free slot are handed
        # straight to this process's dispatcher.
        fanned = await self.deliveries.fan_out(
            recording_id,
            kind,
            body,
            day=day_of(state.accepted_at or 0),
            room=self.dispatch.room(),
            holder=self.dispatch.holder,
            emitted=True,
        )
        self.dispatch.submit(fanned.handed)
        state.emitted.add(kind)
        log.info(
            "%s: recording_id=%s",
            kind,
            recording_id,
            extra=about(recording_id=recording_id, event_type=kind),
        )

    async def _finish(self, state: RecordingState, status: Status, **fields: str | int) -> None:
        """The recording is final: its whole state written to the archive (`state.json`), then
        trimmed in Redis to what the list and de-duplication need (`RecordingStore.finish`),
        and counted."""
        for name, value in fields.items():
            setattr(state, name, value)
        state.status = status
        state.archived_at = state.updated_at = _now_ms()
        state.plivo_requests += take_count()  # this job's, with those of the jobs before
        await self._archive(state, "state", state.document())
        await self.store.finish(state)
        self.metrics.count("relay_recordings_total", status=status)

    async def _announce_archive(self, state: RecordingState) -> None:
        """`recording.archived`: every object the archive holds of the recording, each with
        its size and SHA-256 as read back from the store (the audio's as it was copied)."""
        if events.ARCHIVED in state.emitted or events.ARCHIVED in state.events:
            await self.emit(state.recording_id, state, events.ARCHIVED)  # as kept
            return
        prefix = history.prefix(state)
        copied = {f"{prefix}/{copy.name}": copy for copy in state.audio}
        objects = []
        for key in await self.archive.keys(prefix):
            if key == f"{prefix}/events/{events.ARCHIVED}.json":
                continue  # this very event, from a run cut short
            if key in copied:
                audio = copied[key]
                objects.append(ArchivedObject(key=key, size=audio.size, sha256=audio.sha256))
                continue
            data = await self.archive.get(key) or b""
            objects.append(
                ArchivedObject(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest())
            )
        archive = ArchiveData(url=f"{redacted(self.archive.url)}/{prefix}/", objects=objects)
        await self.emit(state.recording_id, state, events.ARCHIVED, archive=archive)

    async def fail(self, recording_id: str, state: RecordingState, stage: str, reason: str) -> None:
        if state.details_at is not None and state.audio_archived_at is None:
            # The recording exists at Plivo: keep its audio too, if it can be had now.
            with contextlib.suppress(PlivoError, ArchiveUnavailable):
                await self._archive_audio(state)
        log.warning(
            "recording.failed: recording_id=%s at %s: %s",
            recording_id,
            stage,
            reason,
            extra=about(recording_id=recording_id, stage=stage, reason=reason),
        )
        await self.emit(recording_id, state, events.FAILED, stage=stage, reason=reason)
        if state.audio_archived_at is not None:  # what there is of it is kept: say so
            with contextlib.suppress(ArchiveUnavailable):
                await self._announce_archive(state)
        if state.details_at is not None:  # it exists at Plivo
            await self._schedule_deletion(recording_id)
        await self._finish(
            state, Status.FAILED, failed_at=_now_ms(), last_error=f"{stage}: {reason}"
        )


def _callback(state: RecordingState) -> dict[str, Any]:
    callback: dict[str, Any] = json.loads(state.callback or "{}")
    return callback


def _from_callback(callback: TranscriptionCallback) -> dict[str, Any]:
    """The `transcription` result as Plivo's callback carried it."""
    return {
        "status": "success",
        "transcription": callback.transcription,
        "cost": callback.charge,
        "rate": callback.rate,
        "recording_duration_ms": callback.duration_ms,
        "source": "callback",
    }


def _now_ms() -> int:
    return int(time.time() * 1000)
