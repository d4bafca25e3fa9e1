"""Retention: the recording removed from Plivo (`PLIVO_DELETE_AFTER_DAYS`), only once the
archive holds a verified copy of its audio and documents."""

from __future__ import annotations

import logging

from arq import Retry

from service.domain.events import Stage
from service.plivo.client import PlivoError, count_requests, take_count
from service.storage import jobs
from service.storage.archive import ArchiveUnavailable
from service.storage.history import prefix
from service.storage.recordings import RecordingState, Status
from workers.pipeline.context import Context

log = logging.getLogger("recording_relay.pipeline")


async def schedule_deletion(ctx: Context, recording_id: str) -> None:
    """Queue the deletion job for when the retention policy says (if it says)."""
    days = ctx.settings.plivo_delete_after_days
    if days is None:
        return
    await jobs.enqueue(ctx.arq, jobs.DELETE_RECORDING, recording_id, defer=days * 86_400)


async def delete(ctx: Context, recording_id: str, job_try: int = 1) -> str:
    """The deletion job: remove the recording and its transcription from Plivo."""
    found = await ctx.store.state(recording_id)
    if found is None or found.deleted_at is not None or found.status == Status.ERASED:
        return "nothing to do"  # (an erasure deletes Plivo's copy itself)
    if not found.final:
        # Queued as the recording's last job finishes it: that job has not written its end
        # yet (only a retention of 0 days comes this soon). Looked at again shortly.
        raise Retry(defer=min(60.0, 2.0**job_try))
    try:
        state = await ctx.history.full(found)
        problem = await unverified(ctx, state)
    except ArchiveUnavailable as error:
        await ctx.retry_later(recording_id, Stage.DELETE_RECORDING, error, job_try)
    if problem is not None:
        reason = f"not deleted from Plivo: {problem}"
        await ctx.store.note_error(recording_id, reason)
        log.warning("recording_id=%s %s", recording_id, reason)
        return "kept"
    with count_requests():
        try:
            await ctx.plivo.delete_everything(state.auth_id, recording_id)
        except PlivoError as error:
            if not error.transient:
                raise
            await ctx.retry_later(recording_id, Stage.DELETE_RECORDING, error, job_try)
        finally:
            await ctx.store.add_requests(recording_id, take_count())
    await ctx.store.deleted_from_plivo(recording_id)
    return "deleted"


async def unverified(ctx: Context, state: RecordingState) -> str | None:
    """Why the archive's copy of the recording cannot stand in for Plivo's, or None."""
    if not state.archived:
        return "its documents are not all in the archive"
    if not state.audio:
        return "its audio is not in the archive"
    for copy in state.audio:
        key = f"{prefix(state)}/{copy.name}"
        if await ctx.archive.size(key) != copy.size:
            return f"the archive's {key} is missing or not the size copied"
    if await ctx.archive.size(f"{prefix(state)}/recording.json") is None:
        return "the archive's recording.json is missing"
    return None
