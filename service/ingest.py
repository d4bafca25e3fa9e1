"""The endpoints Plivo calls: `/plivo/recording` and `/plivo/transcription`.

Each request is read (`service.body`), verified (`service.plivo_auth`), normalised
(`service.callbacks`) and written to Redis (`service.store`) before it is answered, so a `200`
means the work is durably queued. If Redis cannot be reached the answer is `503`, and Plivo
tries again.
"""

from __future__ import annotations

import logging
import time

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from service.body import read_params
from service.callbacks import InvalidCallback, parse_recording, parse_transcription
from service.plivo_auth import PlivoAuth
from service.store import RecordingStore

log = logging.getLogger("recording_relay.ingest")

# An empty Plivo XML document: a valid answer for a `<Record action>` URL too.
EMPTY_XML = b"<Response></Response>"


def plivo_ok() -> Response:
    return Response(EMPTY_XML, media_type="application/xml")


class Ingest:
    """Request handlers bound to the signature checker and the store."""

    def __init__(self, auth: PlivoAuth, store: RecordingStore) -> None:
        self.auth = auth
        self.store = store

    async def recording(self, request: Request) -> Response:
        params = await read_params(request)
        auth_id = self.auth.verify(request, params)
        try:
            callback = parse_recording(params.merged(), auth_id, time.time())
        except InvalidCallback as error:
            raise HTTPException(400, str(error)) from None
        outcome = await self.store.accept(callback)
        log.info(
            "recording callback %s: recording_id=%s source=%s",
            outcome.value,
            callback.recording_id,
            callback.source.value,
        )
        return plivo_ok()

    async def transcription(self, request: Request) -> Response:
        params = await read_params(request)
        auth_id = self.auth.verify(request, params)
        try:
            callback = parse_transcription(params.merged(), auth_id, time.time())
        except InvalidCallback as error:
            raise HTTPException(400, str(error)) from None
        await self.store.save_transcription(callback)
        log.info(
            "transcription callback stored: recording_id=%s error=%s",
            callback.recording_id,
            "yes" if callback.error else "no",
        )
        return plivo_ok()
