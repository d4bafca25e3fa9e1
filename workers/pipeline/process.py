"""The `process` job: the recording's details (`recording.completed`), then its one
transcription, bought at most once ever; then the audio copy, and `collect` queued.

`transcription_requesting` is written before the request (once its rate-limit slot is taken,
and the request goes only once Redis has answered that it kept it) and never cleared, so a
re-run after a crash never pays twice: it asks Plivo whether the request arrived, and waits for
that transcription instead. No purchase when the customer's `<Record>` already transcribes, or
Plivo's transcription callback came first.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from arq import Retry

from service.domain import events
from service.domain.callbacks import Origin
from service.domain.recording import PlivoRecording
from service.logs import about
from service.plivo.client import NotFound, PlivoError
from service.storage import jobs
from service.storage.recordings import RecordingState, Status, now_ms
from workers.pipeline import announce, audio, retention
from workers.pipeline.context import Context, started_by
from workers.redis_outage import LOST, redis_back

log = logging.getLogger("recording_relay.pipeline")


async def process(ctx: Context, state: RecordingState) -> str:
    """Take the recording as far as its transcription; what it came to."""
    recording_id = state.recording_id
    callback = started_by(state)
    backfilled = callback.origin == Origin.BACKFILL
    if state.details_at is None:
        recording = await fetch(ctx, state)
        if not backfilled and older_than_retention(ctx, recording):
            # A replayed callback without times of its own: the relay has forgotten this
            # recording, may have transcribed it already, and must not buy that again.
            reason = "made before the retention window (RECORDING_RETENTION_DAYS): ignored"
            await ctx.store.ignore(recording_id, reason)
            ctx.metrics.count("relay_recordings_total", status=Status.IGNORED)
            log.warning(
                "recording_id=%s %s", recording_id, reason, extra=about(recording_id=recording_id)
            )
            return "ignored"
        await ctx.keep(state, "callback", callback.model_dump_json())
        await ctx.keep(state, "recording", recording.document())
        await ctx.store.details_fetched(state, recording)
    # Out of the step above: a run cut short between its write and the event (Redis lost as
    # it answered) sends the event on the re-run; once sent, `emit` sends it no more.
    await announce.emit(ctx, state, events.COMPLETED)
    if not callback.transcribe:  # a backfill that buys no transcription
        return await archive_only(ctx, state)
    if state.transcription_requested_at is None:
        # A run before this one bought it, or may have (it died between the mark and the
        # request, or right after): Plivo is asked which.
        requested = state.transcription_requesting
        if requested is not None:
            requested = await bought_before(ctx, state, requested)
        if requested is None:
            requested = await transcription(ctx, state, backfilled)
        await ctx.store.transcription_requested(recording_id, requested)
    if state.audio_archived_at is None:
        await audio.copy(ctx, state)
    first_poll = ctx.settings.transcription_poll_schedule[0]
    await jobs.enqueue_collector(ctx.arq, recording_id, defer=first_poll)
    return "transcribing"


async def fetch(ctx: Context, state: RecordingState) -> PlivoRecording:
    """Plivo's Recording object (a 404 is a refusal: the recording fails)."""
    try:
        return await ctx.plivo.get_recording(state.auth_id, state.recording_id)
    except NotFound as error:
        raise PlivoError(404, f"recording not found: {error.message}") from None


def older_than_retention(ctx: Context, recording: PlivoRecording) -> bool:
    """Whether Plivo made the recording before the retention window."""
    try:
        added = datetime.fromisoformat(str(recording.add_time))
    except ValueError:
        return False  # Plivo did not say: the callback's own times were checked on arrival
    if added.tzinfo is None:
        added = added.replace(tzinfo=UTC)
    age = time.time() - added.timestamp()
    return age > ctx.settings.recording_retention_days * 86_400


async def transcription(ctx: Context, state: RecordingState, backfilled: bool) -> int:
    """See that the recording is transcribed, once: Plivo's callback came first, or the
    customer's `<Record>` transcribes, or it is bought here. When that was decided (ms)."""
    if await ctx.transcription_callback(state) is not None:
        return now_ms()
    # A backfilled recording may be older than the relay's memory: one Plivo already
    # transcribes (for the relay before, or anyone) is collected, not bought again.
    if backfilled and await ctx.transcribed_at_plivo(state):
        return now_ms()
    if ctx.settings.plivo_auto_transcription:
        return now_ms()
    mark = now_ms()

    async def marking() -> None:
        # The mark goes in once the request's rate-limit slot is taken (the limiter's Redis
        # call can fail too), and the request goes only once Redis has said it kept the
        # mark: a mark whose answer was lost is written again when Redis is back.
        try:
            await ctx.store.mark_transcription(state.recording_id, mark)
        except LOST:
            if not await redis_back(ctx.arq):
                raise
            await ctx.store.mark_transcription(state.recording_id, mark)

    await ctx.plivo.create_transcription(
        state.auth_id,
        state.recording_id,
        ctx.transcription_callback_url,
        before_sending=marking,
    )
    return mark


async def bought_before(ctx: Context, state: RecordingState, mark: int) -> int | None:
    """A run before this one marked the transcription as being bought and did not live to say
    that Plivo took the request. Whether Plivo has it: the mark's time if it does, None if the
    request never arrived (it is bought now).

    Plivo has it if its callback came, if it serves the transcription (ready or not), or if
    its List Transcriptions shows it. Plivo does not say whether it answers 404 or lists
    nothing while a transcription is running, so "never arrived" is decided only once the mark
    is `PLIVO_UNKNOWN_REQUEST_WAIT` old: until then the job waits."""
    if await ctx.transcription_callback(state) is not None:
        return mark
    if await ctx.transcribed_at_plivo(state):
        return mark
    listed = await ctx.plivo.transcriptions_page(state.auth_id)
    if any(t.get("recording_id") == state.recording_id for t in listed):
        return mark
    waited = time.time() - mark / 1000
    patience = ctx.settings.plivo_unknown_request_wait
    if waited < patience:
        raise Retry(defer=patience - waited)
    log.warning(
        "recording_id=%s: the transcription marked as being bought %.0f s ago never reached "
        "Plivo (a worker died before sending it); buying it now",
        state.recording_id,
        waited,
        extra=about(recording_id=state.recording_id),
    )
    return None


async def archive_only(ctx: Context, state: RecordingState) -> str:
    """A recording backfilled with `--no-transcribe`: its audio and documents archived and
    announced (`recording.archived`), and no transcription bought."""
    if state.audio_archived_at is None:
        await audio.copy(ctx, state)
    await announce.archive_inventory(ctx, state)
    await retention.schedule_deletion(ctx, state.recording_id)
    await announce.finish(ctx, state, Status.NOT_TRANSCRIBED)
    return "archived, not transcribed"
