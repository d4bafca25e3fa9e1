"""What happens to an accepted recording: details, transcription, the archive, events.

Three arq jobs per recording, each safe to run again at any point (arq delivers at least once,
and a worker may be killed mid-job); what is done is recorded in the recording's state in Redis
before the next step starts. Read in order:

- `process`: the details (`recording.completed`) and the one transcription, then `collect`
  queued;
- `collect`: the transcription's results (`recording.transcribed`);
- `audio`: the audio's copy in the archive;
- `announce`: the events, `recording.archived`, the end (finished or `recording.failed`);
- `retention`: the `delete` job, Plivo's copy removed once the archive's is verified;
- erasure (`workers.erasure`) stops any of them: a job whose recording is erased meanwhile ends
  at its next write to the state (`Erased`), having bought and sent nothing more;
- `context`: what they all work with.

When Plivo has an outage (5xx, 429 or no answer after a request's own retries), the job runs
again later with backoff, for `PLIVO_OUTAGE_WINDOW` after the callback (`collect`: until its
deadline); a refusal (other 4xx) fails the recording at once. On the happy path a recording
costs 4 Plivo requests: the recording, the transcription request, and the `raw` and
`diarized` transcripts (the callback carries the text itself).
"""

from __future__ import annotations

import time

from service.domain.events import Stage
from service.plivo.client import PlivoError, count_requests, take_count
from service.storage.archive import ArchiveUnavailable
from service.storage.recordings import Erased, now_ms
from workers.pipeline import announce, retention
from workers.pipeline import collect as collect_step
from workers.pipeline import process as process_step
from workers.pipeline.context import Context, Dispatch

__all__ = ["Context", "Dispatch", "Pipeline"]


class Pipeline:
    """The pipeline's jobs, as the worker runs them: each reads the recording's state and
    takes it a step on."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def process(self, recording_id: str, job_try: int = 1) -> str:
        ctx = self.ctx
        state = await ctx.store.state(recording_id)
        if state is None or state.final:
            return "nothing to do"
        with count_requests():
            try:
                return await process_step.process(ctx, state)
            except Erased:
                return "erased"
            except ArchiveUnavailable as error:  # nothing is lost: every write is repeated
                await ctx.retry_later(recording_id, None, error, job_try)
            except PlivoError as error:
                stage = (
                    Stage.FETCH_RECORDING
                    if state.details_at is None
                    else Stage.REQUEST_TRANSCRIPTION
                )
                accepted = (state.accepted_at or now_ms()) / 1000
                if error.transient and time.time() - accepted < ctx.settings.plivo_outage_window:
                    await ctx.retry_later(recording_id, stage, error, job_try)
                await announce.fail(ctx, state, stage, error.message)
                return "failed"
            finally:
                await ctx.store.add_requests(recording_id, take_count())

    async def collect(self, recording_id: str, job_try: int) -> str:
        ctx = self.ctx
        state = await ctx.store.state(recording_id)
        if state is None or state.final:
            return "nothing to do"
        with count_requests():
            try:
                return await collect_step.collect(ctx, state, job_try)
            except Erased:
                return "erased"
            except ArchiveUnavailable as error:  # retried at the next poll, as below
                defer = collect_step.poll_in(ctx, job_try)
                await ctx.retry_later(recording_id, None, error, job_try, defer)
            except PlivoError as error:
                stage = Stage.COLLECT_TRANSCRIPTION
                if error.transient and not collect_step.past_deadline(ctx, state):
                    # The collector's tries are mostly polls: an outage is retried at the next
                    # poll, not on a backoff grown by every poll before it.
                    defer = collect_step.poll_in(ctx, job_try)
                    await ctx.retry_later(recording_id, stage, error, job_try, defer)
                await announce.fail(ctx, state, stage, error.message)
                return "failed"
            finally:
                await ctx.store.add_requests(recording_id, take_count())

    async def delete(self, recording_id: str, job_try: int = 1) -> str:
        try:
            return await retention.delete(self.ctx, recording_id, job_try)
        except Erased:
            return "erased"
