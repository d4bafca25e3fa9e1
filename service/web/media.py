"""`GET /media/<recording_id>.<format>?expires=&signature=[&type=original]`: a recording's audio
for whoever holds a link the relay signed (`service.domain.media_links`): no admin token, and never
Plivo's credentials.

- 403 for a link the relay did not sign or one that has expired, 404 for a recording the relay
  does not know or audio it cannot have (no pre-denoised copy, deleted before it was archived),
  410 for a recording that was erased (`DELETE /v1/recordings/{id}`).
- Once archived (the usual case): on S3, GCS and Azure a `307` to a URL of the store signed for
  `STORE_LINK_SECONDS`, so the bytes never pass through the relay; on the file store, served by
  the relay with `Range` support (`206`), `Content-Type` and `Content-Length`.
- Before that: proxied from Plivo with the account's credentials, streamed, `Range` passed
  through.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from service.domain.media_links import LinkRefused, MediaLinks
from service.domain.transcript import FORMS
from service.plivo.client import NotFound, PlivoClient, PlivoError
from service.storage.archive import ArchiveUnavailable
from service.storage.history import History, prefix
from service.storage.recordings import RecordingState, RecordingStore, Status
from service.web.api.operation import ERROR, documented

log = logging.getLogger("recording_relay.media")
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "transcript.json": "application/json",
    "transcript.txt": "text/plain; charset=utf-8",
    "transcript.vtt": "text/vtt; charset=utf-8",
}
TRANSCRIPT_FORMS = tuple(f"transcript.{form}" for form in FORMS)
STORE_LINK_SECONDS = 300  # a redirect is followed at once: the store's link need not last
PROXIED_HEADERS = ("content-type", "content-length", "content-range", "accept-ranges", "etag")
CHUNK_BYTES = 256 * 1024


AUDIO = {
    "description": "the audio",
    "content": {
        kind: {"schema": {"type": "string", "format": "binary"}}
        for kind in ("audio/mpeg", "audio/wav")
    },
}


class MediaAPI:
    """`GET /media/{name}`: a recording's audio, by a signed link."""

    def __init__(
        self, store: RecordingStore, history: History, plivo: PlivoClient, links: MediaLinks
    ) -> None:
        self.store = store
        self.history = history
        self.archive = history.archive
        self.plivo = plivo
        self.links = links

    @documented(
        "getMedia",
        {
            200: AUDIO,
            206: {**AUDIO, "description": "the part asked for with Range"},
            307: "to a short-lived signed URL of the bucket",
            400: ("a type other than original", ERROR),
            403: ("not a link the relay signed, or an expired one", ERROR),
            404: ("an unknown recording, or audio it cannot have", ERROR),
            410: ("the recording was erased", ERROR),
            416: "a range outside the audio",
            502: ("Plivo did not serve audio not yet archived", ERROR),
            503: ("Redis or the archive is unreachable", ERROR),
        },
        summary="A recording's audio, by the signed link in its events' data.media",
        query=tuple(
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in [
                ("expires", {"type": "string"}),
                ("signature", {"type": "string"}),
                ("type", {"type": "string", "enum": ["original"]}),
            ]
        ),
        path_parameters={"name": "<recording_id>.<format> or <recording_id>.transcript.<form>"},
        public=True,
    )
    async def get(self, request: Request) -> Response:
        name = request.path_params["name"]
        query = request.query_params
        try:
            (await self.links.ready()).check(name, query.get("expires"), query.get("signature"))
        except LinkRefused as refused:
            raise HTTPException(403, str(refused)) from None
        variant = query.get("type")
        if variant not in (None, "original"):
            raise HTTPException(400, "type: the only other copy is type=original")
        original = variant == "original"
        recording_id, _, audio_format = name.partition(".")
        found = await self.store.state(recording_id)
        if found is None:
            raise HTTPException(404, f"recording {recording_id} is unknown to the relay")
        if found.status == Status.ERASED:
            raise HTTPException(410, f"recording {recording_id} was erased")
        try:
            state = await self.history.full(found)
        except ArchiveUnavailable as error:
            raise HTTPException(503, str(error)) from None
        if audio_format in TRANSCRIPT_FORMS:
            return await self._from_archive(f"{prefix(state)}/{audio_format}", audio_format)
        key = _archived(state, audio_format, original)
        if key is not None:
            return await self._from_archive(key, audio_format)
        if state.audio_archived_at is not None:
            missing = "pre-denoised copy" if original else f"{audio_format} audio"
            raise HTTPException(404, f"the archive has no {missing} of this recording")
        return await self._from_plivo(state, original, request.headers.get("range"))

    async def _from_archive(self, key: str, audio_format: str) -> Response:
        path = self.archive.local_path(key)
        if path is None:
            try:
                return RedirectResponse(
                    await self.archive.signed_url(key, STORE_LINK_SECONDS), status_code=307
                )
            except ArchiveUnavailable as error:
                raise HTTPException(503, str(error)) from None
        if not path.is_file():
            log.error("media: the archive's %s is missing", key)
            raise HTTPException(404, f"the archive holds no {audio_format} of this recording")
        return FileResponse(path, media_type=CONTENT_TYPES.get(audio_format))

    async def _from_plivo(
        self, state: RecordingState, original: bool, byte_range: str | None
    ) -> Response:
        url = state.recording.recording_url if state.recording else None
        if not url or state.deleted_at is not None:
            raise HTTPException(404, "the recording's audio is not available")
        stack = AsyncExitStack()
        try:
            answer = await stack.enter_async_context(
                self.plivo.media(state.auth_id, url, original, byte_range)
            )
        except NotFound:
            await stack.aclose()
            raise HTTPException(404, "Plivo has no such audio for this recording") from None
        except PlivoError as error:
            await stack.aclose()
            if error.status == 416:
                raise HTTPException(416, "range not satisfiable") from None
            raise HTTPException(502, f"Plivo did not serve the audio: {error.message}") from None
        headers = {name: answer.headers[name] for name in PROXIED_HEADERS if name in answer.headers}

        async def relayed() -> AsyncIterator[bytes]:
            try:
                async for chunk in answer.aiter_raw(CHUNK_BYTES):
                    yield chunk
            except httpx.HTTPError as error:  # cut short: the client sees a short body
                log.warning("media: Plivo's answer for %s broke off: %s", state.recording_id, error)
            finally:
                await stack.aclose()

        return StreamingResponse(
            relayed(),
            status_code=answer.status_code,
            headers=headers,
            background=BackgroundTask(stack.aclose),  # also when the client went away
        )


def _archived(state: RecordingState, audio_format: str, original: bool) -> str | None:
    """The archive's key of the recording's audio (or its pre-denoised copy), if it has it."""
    name = f"audio.original.{audio_format}" if original else f"audio.{audio_format}"
    if any(copy.name == name for copy in state.audio):
        return f"{prefix(state)}/{name}"
    return None
