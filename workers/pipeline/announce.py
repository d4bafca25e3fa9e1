"""Announcing: a recording's events (kept, archived, fanned out to the subscribers), the
`recording.archived` inventory, and the end of its pipeline (finished or failed)."""

from __future__ import annotations

import contextlib
import hashlib
import logging

from service.domain import events
from service.domain.erasure import phone_numbers
from service.domain.events import (
    ArchiveData,
    ArchivedObject,
    EventData,
    Stage,
    Transcript,
)
from service.domain.transcript import ReadableTranscript, forms
from service.domain.urls import redacted
from service.logs import about
from service.plivo.client import PlivoError, take_count
from service.storage.archive import ArchiveUnavailable, day_of
from service.storage.history import prefix
from service.storage.recordings import RecordingState, Status, now_ms
from workers.pipeline import audio, retention
from workers.pipeline.context import Context, started_by

log = logging.getLogger("recording_relay.pipeline")


async def emit(
    ctx: Context,
    state: RecordingState,
    kind: events.EventType,
    transcription: Transcript | None = None,
    stage: Stage | None = None,
    reason: str | None = None,
    archive: ArchiveData | None = None,
    transcript: ReadableTranscript | None = None,
) -> None:
    """Send the recording's `kind` event, once: kept in its state before it is archived or
    sent (a re-run after a crash sends the same bytes), then queued for every subscriber."""
    if kind in state.emitted:
        return
    recording_id = state.recording_id
    body = state.events.get(kind)
    if body is None:
        await ctx.links.ready()
        callback, recording = started_by(state), state.recording
        media = None
        if recording is not None:  # known to Plivo: its audio can be had
            linked = () if transcript is None else forms(transcript)
            media = ctx.links.link(recording_id, recording.audio_format, transcript=linked)
        data = EventData(
            recording_id=recording_id,
            call_uuid=(recording.call_uuid if recording else None) or callback.call_uuid,
            recording=recording.document() if recording else None,
            callback=callback.params,
            transcription=transcription,
            stage=stage,
            reason=reason,
            archive=archive,
            transcript=transcript,
            source=callback.origin.value,
            transcribe=callback.transcribe,
            media=media,
        )
        body = await ctx.store.keep_event(
            recording_id, kind, events.make_event(kind, data).model_dump_json()
        )
        state.events[kind] = body
    await ctx.keep(state, f"events/{kind}", body)
    # Queued and marked emitted in one step; the subscribers with a free slot are handed
    # straight to this process's dispatcher.
    fanned = await ctx.deliveries.fan_out(
        recording_id,
        kind,
        body,
        day=day_of(state.accepted_at or 0),
        room=ctx.dispatch.room(),
        holder=ctx.dispatch.holder,
        emitted=True,
    )
    ctx.dispatch.submit(fanned.handed)
    state.emitted.add(kind)
    log.info(
        "%s: recording_id=%s",
        kind,
        recording_id,
        extra=about(recording_id=recording_id, event_type=kind),
    )


async def archive_inventory(ctx: Context, state: RecordingState) -> None:
    """`recording.archived`: every object the archive holds of the recording, each with its
    size and SHA-256 as read back from the store (the audio's as it was copied)."""
    if events.ARCHIVED in state.emitted or events.ARCHIVED in state.events:
        await emit(ctx, state, events.ARCHIVED)  # as kept
        return
    at = prefix(state)
    copied = {f"{at}/{copy.name}": copy for copy in state.audio}
    objects = []
    for key in await ctx.archive.keys(at):
        if key == f"{at}/events/{events.ARCHIVED}.json":
            continue  # this very event, from a run cut short
        if key in copied:
            audio_copy = copied[key]
            objects.append(ArchivedObject(key=key, size=audio_copy.size, sha256=audio_copy.sha256))
            continue
        data = await ctx.archive.get(key) or b""
        objects.append(
            ArchivedObject(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        )
    archive = ArchiveData(url=f"{redacted(ctx.archive.url)}/{at}/", objects=objects)
    await emit(ctx, state, events.ARCHIVED, archive=archive)


async def finish(ctx: Context, state: RecordingState, status: Status, **fields: str | int) -> None:
    """The recording is final: indexed by who it is of (`service.storage.subject_index`), its
    whole state written to the archive (`state.json`), then trimmed in Redis to what the list
    and de-duplication need (`RecordingStore.finish`), and counted."""
    for name, value in fields.items():
        setattr(state, name, value)
    state.status = status
    state.archived_at = state.updated_at = now_ms()
    state.plivo_requests += take_count()  # this job's, with those of the jobs before
    callback, recording = started_by(state), state.recording
    await ctx.index.write(
        state.recording_id,
        day_of(state.accepted_at or 0),
        state.auth_id,
        phone_numbers(callback.params, recording.document() if recording else None),
        (recording.call_uuid if recording else None) or callback.call_uuid,
    )
    await ctx.keep(state, "state", state.document())
    await ctx.store.finish(state)
    ctx.metrics.count("relay_recordings_total", status=status)


async def fail(ctx: Context, state: RecordingState, stage: Stage, reason: str) -> None:
    """`recording.failed` at `stage`, with what there is of the recording kept and
    announced."""
    if state.details_at is not None and state.audio_archived_at is None:
        # The recording exists at Plivo: keep its audio too, if it can be had now.
        with contextlib.suppress(PlivoError, ArchiveUnavailable):
            await audio.copy(ctx, state)
    recording_id = state.recording_id
    log.warning(
        "recording.failed: recording_id=%s at %s: %s",
        recording_id,
        stage,
        reason,
        extra=about(recording_id=recording_id, stage=stage, reason=reason),
    )
    await emit(ctx, state, events.FAILED, stage=stage, reason=reason)
    if state.audio_archived_at is not None:  # what there is of it is kept: say so
        with contextlib.suppress(ArchiveUnavailable):
            await archive_inventory(ctx, state)
    if state.details_at is not None:  # it exists at Plivo
        await retention.schedule_deletion(ctx, recording_id)
    await finish(ctx, state, Status.FAILED, failed_at=now_ms(), last_error=f"{stage}: {reason}")
