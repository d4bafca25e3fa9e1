"""The endpoints Plivo calls: `/plivo/recording` and `/plivo/transcription`.

Each request is read (`service.web.body`), verified (`service.web.plivo_auth`), normalised
(`service.domain.callbacks`) and written to Redis (`service.storage.recordings`) before it is
answered, so a `200` means the work is durably queued. If Redis cannot be reached the answer is
`503`, and Plivo tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from service.domain.callbacks import InvalidCallback, parse_recording, parse_transcription
from service.domain.redaction import Redactor, redact_callback
from service.metrics import Recorder, series
from service.storage.metrics import Series
from service.storage.recordings import ForeignRecording, Outcome, RecordingStore
from service.web.body import read_params
from service.web.plivo_auth import PlivoAuth

log = logging.getLogger("recording_relay.ingest")

# An empty Plivo XML document: a valid answer for a `<Record action>` URL too. Responses hold
# no per-request state, so one instance serves every request.
PLIVO_OK = Response(b"<Response></Response>", media_type="application/xml")


class Ingest:
    """Request handlers bound to the signature checker and the store.

    Each callback is logged at debug level and counted, by kind and outcome, in one counter:
    at info level `report` writes one line a minute from it, and the metrics take what it
    counted at each flush (`counted`, a source of the `Recorder`). That keeps logging and the
    metrics off the hot path at thousands of callbacks a second: one increment a callback.
    """

    def __init__(
        self,
        auth: PlivoAuth,
        store: RecordingStore,
        metrics: Recorder,
        redactor: Redactor | None = None,
    ) -> None:
        self.auth = auth
        self.store = store
        self.redactor = redactor or Redactor(())
        self.counts: Counter[tuple[str, str]] = Counter()  # (kind, outcome), since the start
        self._reported: Counter[tuple[str, str]] = Counter()
        self._taken: Counter[tuple[str, str]] = Counter()
        metrics.sources.append(self.counted)

    def _count(self, kind: str, outcome: str) -> None:
        self.counts[kind, outcome] += 1

    def counted(self) -> dict[Series, float]:
        """The callbacks counted since the metrics last took them, as metrics' series."""
        new, self._taken = self.counts - self._taken, self.counts.copy()
        found = {
            series("relay_callbacks_total", kind=kind, outcome=outcome): float(n)
            for (kind, outcome), n in new.items()
        }
        if new["recording", "queued"]:
            accepted = series("relay_recordings_accepted_total", source="callback")
            found[accepted] = float(new["recording", "queued"])
        return found

    async def report(self, every: float = 60.0) -> None:
        """Log what was taken in since the last report, forever (run it as a task)."""
        while True:
            await asyncio.sleep(every)
            counts, self._reported = self.counts - self._reported, self.counts.copy()
            if counts:
                summary = ", ".join(f"{n} {k} {o}" for (k, o), n in sorted(counts.items()))
                log.info("callbacks in the last %.0f s: %s", every, summary)

    async def recording(self, request: Request) -> Response:
        return await self._refusals_counted("recording", self._recording(request))

    async def transcription(self, request: Request) -> Response:
        return await self._refusals_counted("transcription", self._transcription(request))

    async def _refusals_counted(self, kind: str, handling: Awaitable[Response]) -> Response:
        """`handling`'s answer; a refusal (`HTTPException`) is counted by its status."""
        try:
            return await handling
        except HTTPException as refused:
            self._count(kind, f"refused_{refused.status_code}")
            raise

    async def _recording(self, request: Request) -> Response:
        params = await read_params(request)
        auth_id = self.auth.verify(request, params)
        now = time.time()
        try:
            callback = parse_recording(params.merged(), auth_id, now)
        except InvalidCallback as error:
            raise HTTPException(400, str(error)) from None
        recorded = callback.recorded_ms
        if recorded is not None and recorded < (now - self.store.retention_seconds) * 1000:
            # The relay has forgotten recordings this old: a callback for one is a replay (or
            # a very late retry), and taking it would buy its transcription a second time.
            self._count("recording", "ignored")
            log.info(
                "recording callback ignored: recording_id=%s was made before the retention "
                "window (RECORDING_RETENTION_DAYS)",
                callback.recording_id,
            )
            return PLIVO_OK
        outcome = await self.store.accept(callback)
        if outcome is Outcome.FAILED:
            raise HTTPException(
                503, "the callback could not be stored; retry later", {"Retry-After": "5"}
            )
        self._count("recording", outcome.value)
        log.debug(
            "recording callback %s: recording_id=%s source=%s",
            outcome.value,
            callback.recording_id,
            callback.source.value,
        )
        return PLIVO_OK

    async def _transcription(self, request: Request) -> Response:
        params = await read_params(request)
        auth_id = self.auth.verify(request, params)
        try:
            callback = parse_transcription(params.merged(), auth_id, time.time())
        except InvalidCallback as error:
            raise HTTPException(400, str(error)) from None
        callback = redact_callback(self.redactor, callback)  # nothing said is kept unredacted
        try:
            await self.store.save_transcription(callback)
        except ForeignRecording:
            raise HTTPException(
                403, "the recording belongs to another account than the one that signed this"
            ) from None
        self._count("transcription", "stored")
        log.debug(
            "transcription callback stored: recording_id=%s error=%s",
            callback.recording_id,
            "yes" if callback.error else "no",
        )
        return PLIVO_OK
