"""What every step of the pipeline works with: its collaborators in one `Context`, and the
helpers they share (trying a job again later, writing a document to the archive, the
transcription callback Plivo sent)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from arq import Retry
from arq.connections import ArqRedis

from service.domain.callbacks import RecordingCallback, TranscriptionCallback
from service.domain.events import Stage
from service.domain.media_links import MediaLinks
from service.domain.redaction import Redactor
from service.metrics import Recorder
from service.plivo.client import NotFound, PlivoClient
from service.settings import Settings
from service.storage.archive import Archive
from service.storage.deliveries import Claimed, Deliveries
from service.storage.history import History, prefix
from service.storage.recordings import RecordingState, RecordingStore
from service.storage.subject_index import SubjectIndex

log = logging.getLogger("recording_relay.pipeline")


class Dispatch(Protocol):
    """Where deliveries the fan-out hands back are attempted (`workers.dispatcher`)."""

    holder: str  # the worker's name: what it is handed is held under it

    def room(self) -> int: ...

    def submit(self, deliveries: list[Claimed]) -> None: ...


@dataclass
class Context:
    """The pipeline's collaborators, built once per worker process."""

    settings: Settings
    store: RecordingStore
    plivo: PlivoClient
    arq: ArqRedis
    deliveries: Deliveries
    archive: Archive
    metrics: Recorder
    dispatch: Dispatch
    links: MediaLinks
    index: SubjectIndex  # who each archived recording is of (erasure by person)
    history: History = field(init=False)
    redactor: Redactor = field(init=False)  # REDACT
    # Bounds the memory audio takes: a transfer holds one upload part at most.
    audio_transfers: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.history = History(self.archive)
        self.redactor = Redactor.named(self.settings.redact)
        self.audio_transfers = asyncio.Semaphore(self.settings.audio_transfers)

    @property
    def transcription_callback_url(self) -> str | None:
        """Where Plivo is asked to send the transcription (none without PUBLIC_BASE_URL)."""
        base = self.settings.public_base_url
        return f"{base}/plivo/transcription" if base else None

    async def retry_later(
        self,
        recording_id: str,
        stage: Stage | None,
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
        await self.store.note_error(recording_id, f"{what} (retrying)")
        log.warning("recording_id=%s %s; trying again in %.0f s", recording_id, what, defer)
        raise Retry(defer=defer)

    async def keep(self, state: RecordingState, name: str, document: Any) -> None:
        """Write one of the recording's documents to the archive (`name` without `.json`)."""
        data = document.encode() if isinstance(document, str) else json.dumps(document).encode()
        await self.archive.put(f"{prefix(state)}/{name}.json", data)

    async def transcription_callback(self, state: RecordingState) -> TranscriptionCallback | None:
        """Plivo's transcription callback for the recording, if its owner's account signed it
        (the web process refuses others; this also covers one that came before the recording's
        own callback)."""
        callback = await self.store.transcription_callback(state.recording_id)
        if callback is not None and callback.auth_id != state.auth_id:
            log.warning(
                "recording_id=%s: ignoring a transcription callback signed by another account",
                state.recording_id,
            )
            return None
        return callback

    async def transcribed_at_plivo(self, state: RecordingState) -> bool:
        """Whether Plivo has a transcription of the recording, ready or in progress."""
        try:
            await self.plivo.get_transcription(state.auth_id, state.recording_id, "transcription")
        except NotFound:
            return False
        return True


def started_by(state: RecordingState) -> RecordingCallback:
    """The callback that started the recording's pipeline (the state holds it while the
    recording is in flight)."""
    if state.callback is None:
        raise RuntimeError(f"recording {state.recording_id} has no callback in its state")
    return state.callback
