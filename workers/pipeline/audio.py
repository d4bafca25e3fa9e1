"""The audio copy: the recording's audio streamed from Plivo into the archive, checked whole."""

from __future__ import annotations

import logging

from service.plivo.client import UNREACHABLE, NotFound, PlivoError
from service.storage.history import prefix
from service.storage.recordings import AudioCopy, RecordingState
from workers.pipeline.context import Context

log = logging.getLogger("recording_relay.pipeline")

MEDIA_CHUNK_BYTES = 1024 * 1024  # read from Plivo and handed to the store at a time


async def copy(ctx: Context, state: RecordingState) -> None:
    """Copy the recording's audio from Plivo to the archive, streamed (`audio.<format>`, and
    `audio.original.<format>` with `ARCHIVE_ORIGINAL`), each checked whole: the size Plivo
    announced, the size the store holds, and a SHA-256, recorded in the state."""
    recording = state.recording
    url = (recording.recording_url if recording else None) or ""
    extension = recording.audio_format if recording else "mp3"
    copies = []
    for original in (False, True) if ctx.settings.archive_original else (False,):
        name = f"audio.original.{extension}" if original else f"audio.{extension}"
        key = f"{prefix(state)}/{name}"
        try:
            async with (
                ctx.audio_transfers,
                ctx.plivo.media(state.auth_id, url, original) as answer,
            ):
                announced = answer.headers.get("content-length")
                size, sha256 = await ctx.archive.put_stream(
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
    await ctx.store.audio_archived(state, copies)
    log.info("audio archived: recording_id=%s %s", state.recording_id, copies)
