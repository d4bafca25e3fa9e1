"""The `collect` job: the transcription's three results (`transcription`, `raw`, `diarized`),
archived and announced (`recording.transcribed`).

It runs when Plivo's transcription callback arrives (the web process moves the job to now) or
else at the next poll of `TRANSCRIPTION_POLL_SCHEDULE`; between polls the job is deferred in
the queue, holding no worker. Once `TRANSCRIPTION_DEADLINE` passes, the recording fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from arq import Retry

from service.domain import events
from service.domain.callbacks import TranscriptionCallback
from service.domain.events import Stage, Transcript
from service.domain.redaction import redact_documents
from service.domain.transcript import ReadableTranscript, build, files
from service.plivo.client import NotFound
from service.storage.history import prefix
from service.storage.recordings import RecordingState, Status, now_ms
from workers.pipeline import announce, retention
from workers.pipeline.context import Context

log = logging.getLogger("recording_relay.pipeline")
PENDING = ("in-progress", "pending", "processing")  # Plivo's words for "not ready yet"


async def collect(ctx: Context, state: RecordingState, job_try: int) -> str:
    """Collect the transcription if it is ready; what it came to."""
    callback = await ctx.transcription_callback(state)
    if callback is not None and callback.error:
        await announce.fail(ctx, state, Stage.TRANSCRIPTION, callback.error)
        return "failed"
    if callback is not None:
        main = from_callback(callback)
    else:
        polled = await poll(ctx, state)
        if polled is None:
            return await wait(ctx, state, job_try)
        main = polled
        if main.get("status") not in (None, "success"):
            reason = str(main.get("error") or f"transcription {main.get('status')}")
            await announce.fail(ctx, state, Stage.TRANSCRIPTION, reason)
            return "failed"
    auth_id, recording_id = state.auth_id, state.recording_id
    raw = await ctx.plivo.get_transcription(auth_id, recording_id, "raw")
    diarized = await ctx.plivo.get_transcription(auth_id, recording_id, "diarized")
    documents = {"transcription": main, "raw": raw, "diarized": diarized}
    for document in documents.values():
        document.pop("api_id", None)
    # Before the first byte is kept or sent.
    redacted = redact_documents(ctx.redactor, documents.values())
    readable = readable_transcript(main, raw, diarized, redacted)
    # Six objects, written side by side: the event waits on the slowest, not on their sum.
    await asyncio.gather(
        *(ctx.keep(state, name, document) for name, document in documents.items()),
        *(
            ctx.archive.put(f"{prefix(state)}/{name}", data)
            for name, data in files(readable).items()
        ),
    )
    transcript = Transcript(
        transcription=main,
        raw=raw,
        diarized=diarized,
        cost=main.get("cost", raw.get("cost")),
        rate=main.get("rate", raw.get("rate")),
    )
    # The event and the request count are in before the status says it is done.
    await announce.emit(
        ctx, state, events.TRANSCRIBED, transcription=transcript, transcript=readable
    )
    await announce.archive_inventory(ctx, state)
    await retention.schedule_deletion(
        ctx, recording_id
    )  # before the end: a final one is not re-run
    await announce.finish(ctx, state, Status.TRANSCRIBED, transcribed_at=now_ms())
    if state.transcription_requested_at is not None:
        waited = time.time() - state.transcription_requested_at / 1000
        ctx.metrics.observe("relay_transcription_seconds", max(0.0, waited))
    return "transcribed"


async def poll(ctx: Context, state: RecordingState) -> dict[str, Any] | None:
    """Plivo's `transcription` result, or None while it is not ready."""
    try:
        document = await ctx.plivo.get_transcription(
            state.auth_id, state.recording_id, "transcription"
        )
    except NotFound:
        return None
    return None if document.get("status") in PENDING else document


async def wait(ctx: Context, state: RecordingState, job_try: int) -> str:
    """Not ready: the job runs again at the next poll, or the recording fails past its
    deadline."""
    if past_deadline(ctx, state):
        deadline = ctx.settings.transcription_deadline
        await announce.fail(ctx, state, Stage.TRANSCRIPTION, f"deadline of {deadline:g} s passed")
        return "failed"
    if await ctx.transcription_callback(state) is not None:
        raise Retry(defer=0)  # it came while we polled: go again at once
    raise Retry(defer=poll_in(ctx, job_try))


def poll_in(ctx: Context, job_try: int) -> float:
    """Seconds to the next poll, by the job's tries."""
    schedule = ctx.settings.transcription_poll_schedule
    return schedule[min(job_try, len(schedule) - 1)]


def past_deadline(ctx: Context, state: RecordingState) -> bool:
    """Whether the transcription has been waited for longer than `TRANSCRIPTION_DEADLINE`."""
    requested = (state.transcription_requested_at or now_ms()) / 1000
    return time.time() - requested > ctx.settings.transcription_deadline


def readable_transcript(
    main: dict[str, Any], raw: dict[str, Any], diarized: dict[str, Any], redacted: dict[str, int]
) -> ReadableTranscript:
    """The transcript as people read it; one that cannot be derived says so, and the recording
    goes on."""
    try:
        return build(
            main.get("transcription"),
            raw.get("transcription"),
            diarized.get("transcription"),
            redacted,
        )
    except Exception as error:  # a shape nobody foresaw: said in the event, never a failure
        log.exception("the transcript could not be read; the recording goes on without it")
        return ReadableTranscript(
            text=main["transcription"] if isinstance(main.get("transcription"), str) else "",
            turns=[],
            speakers=0,
            words=0,
            timed=False,
            redacted=redacted,
            problems=[f"the transcript could not be read: {type(error).__name__}"],
        )


def from_callback(callback: TranscriptionCallback) -> dict[str, Any]:
    """The `transcription` result as Plivo's callback carried it."""
    return {
        "status": "success",
        "transcription": callback.transcription,
        "cost": callback.charge,
        "rate": callback.rate,
        "recording_duration_ms": callback.duration_ms,
        "source": "callback",
    }
