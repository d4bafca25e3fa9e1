"""An async client for the parts of Plivo's REST API the relay calls, on httpx.

One `PlivoClient` per process (one connection pool). Every call has a timeout, takes a slot
from the shared rate limiter first, retries 5xx answers and timeouts with exponential backoff
and jitter, honours `Retry-After` on 429, and raises `PlivoError` (with Plivo's message) when
that is not enough; its `transient` tells an outage from a refusal. Plivo's numbers-as-strings
come back as numbers. `count_requests()` tells a caller how many HTTP requests its calls cost,
retries included.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import httpx

from service.domain.recording import PlivoRecording
from service.logs import about
from service.metrics import Recorder
from service.storage.rate_limit import Limiter

log = logging.getLogger("recording_relay.plivo")

NUMERIC_FIELDS = {
    "recording_duration_ms",
    "recording_start_ms",
    "recording_end_ms",
    "rounded_recording_duration",
    "recording_storage_duration",
    "recording_storage_rate",
    "monthly_recording_storage_amount",
    "cost",
    "rate",
}
TRANSCRIPT_TYPES = ("transcription", "raw", "diarized")
_requests: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "plivo_requests", default=None
)


class PlivoError(Exception):
    """Plivo answered with an error: `status` and Plivo's own `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Plivo {status}: {message}")
        self.status = status
        self.message = message

    @property
    def transient(self) -> bool:
        """Worth trying again later: Plivo was down, overloaded or unreachable."""
        return self.status == 429 or self.status >= 500 or self.status == UNREACHABLE


class NotFound(PlivoError):
    """Plivo answered 404: it has no such object (or not yet)."""

    pass


UNREACHABLE = 0  # the `status` of a PlivoError when no answer came (timeouts, refused)


@contextmanager
def count_requests() -> Iterator[list[int]]:
    """Within the block, `counter[0]` is the number of HTTP requests made to Plivo."""
    counter = [0]
    token = _requests.set(counter)
    try:
        yield counter
    finally:
        _requests.reset(token)


def take_count() -> int:
    """The requests counted in the current `count_requests()` block so far, resetting it."""
    counter = _requests.get()
    if counter is None:
        return 0
    taken, counter[0] = counter[0], 0
    return taken


def numbers(document: dict[str, Any]) -> dict[str, Any]:
    """Plivo's numeric fields as numbers ("345100.00000" -> 345100)."""
    converted = dict(document)
    for key in NUMERIC_FIELDS & converted.keys():
        value = converted[key]
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                continue
            converted[key] = int(number) if number.is_integer() else number
    return converted


class PlivoClient:
    """Plivo's REST API over httpx: retries, the shared rate limit, numbers as numbers."""

    def __init__(
        self,
        base_url: str,
        credentials: dict[str, str],
        limiter: Limiter | None = None,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
        metrics: Recorder | None = None,
    ) -> None:
        self.credentials = credentials  # auth_id -> auth token
        self.metrics = metrics
        self.limiter = limiter
        self.retries = retries
        self.backoff = backoff
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/v1/Account/",
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _request(
        self,
        auth_id: str,
        method: str,
        path: str,
        before_sending: Callable[[], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """`before_sending` runs once, after the first attempt's rate-limit slot is taken and
        right before it is sent: nothing that can fail on Redis stands between the two."""
        token = self.credentials.get(auth_id)
        if token is None:
            raise PlivoError(401, f"no credentials configured for {auth_id}")
        url = f"{auth_id}/{path}"
        for attempt in range(self.retries + 1):
            if self.limiter is not None:
                await self.limiter.acquire(auth_id)
            if attempt == 0 and before_sending is not None:
                await before_sending()
            counter = _requests.get()
            if counter is not None:
                counter[0] += 1
            delay = self.backoff * 2**attempt * random.uniform(0.5, 1.5)
            try:
                response = await self.http.request(method, url, auth=(auth_id, token), **kwargs)
            except (httpx.TimeoutException, httpx.NetworkError) as error:
                self._counted(method, path, "unreachable")
                if attempt == self.retries:
                    reason = f"no answer from Plivo ({type(error).__name__})"
                    raise PlivoError(UNREACHABLE, reason) from error
                await asyncio.sleep(delay)
                continue
            self._counted(method, path, str(response.status_code))
            if response.status_code == 429 or response.status_code >= 500:
                if attempt == self.retries:
                    raise PlivoError(response.status_code, _message(response))
                retry_after = _retry_after(response)
                await asyncio.sleep(retry_after if retry_after is not None else delay)
                continue
            if response.status_code == 404:
                raise NotFound(404, _message(response))
            if response.status_code >= 400:
                raise PlivoError(response.status_code, _message(response))
            return response
        raise AssertionError("unreachable")

    def _counted(self, method: str, path: str, status: str) -> None:
        """Each request to Plivo's API: a debug line and `relay_plivo_requests_total`."""
        endpoint = f"{method} {path.partition('/')[0]}"  # "GET Recording", "POST Transcription"
        log.debug("Plivo %s %s: %s", method, path, status, extra=about(endpoint=endpoint))
        if self.metrics is not None:
            self.metrics.count("relay_plivo_requests_total", endpoint=endpoint, status=status)

    async def get_recording(self, auth_id: str, recording_id: str) -> PlivoRecording:
        """Plivo's Recording object, less its `api_id`."""
        response = await self._request(auth_id, "GET", f"Recording/{recording_id}/")
        document = numbers(response.json())
        document.pop("api_id", None)
        return PlivoRecording.model_validate(document)

    async def recordings_page(
        self, auth_id: str, offset: int, limit: int, **filters: str
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of List Recordings (newest first) matching `filters`, and whether there are
        more after it."""
        params = {**filters, "limit": limit, "offset": offset}
        page = (await self._request(auth_id, "GET", "Recording/", params=params)).json()
        more = bool(page.get("meta", {}).get("next"))
        return [numbers(recording) for recording in page.get("objects", [])], more

    async def delete_recording(self, auth_id: str, recording_id: str) -> None:
        await self._request(auth_id, "DELETE", f"Recording/{recording_id}/")

    async def create_transcription(
        self,
        auth_id: str,
        recording_id: str,
        callback_url: str | None,
        before_sending: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Buy a transcription; `before_sending` (the pipeline's mark that it is buying one)
        runs once the request's rate-limit slot is taken, right before it goes."""
        body = {"transcription_callback_url": callback_url} if callback_url else None
        path = f"Transcription/{recording_id}/"
        await self._request(auth_id, "POST", path, before_sending=before_sending, json=body)

    async def get_transcription(self, auth_id: str, recording_id: str, kind: str) -> dict[str, Any]:
        """One type of transcript; `NotFound` while Plivo is still transcribing."""
        response = await self._request(
            auth_id, "GET", f"Transcription/{recording_id}/", params={"type": kind}
        )
        return numbers(response.json())

    async def transcriptions_page(self, auth_id: str) -> list[dict[str, Any]]:
        """The first page of List Transcriptions (its filters and order are not documented;
        the newest are taken to come first, as for recordings)."""
        page = (await self._request(auth_id, "GET", "Transcription/", params={"limit": 20})).json()
        return list(page.get("objects", []))

    async def delete_transcription(self, auth_id: str, recording_id: str) -> None:
        await self._request(auth_id, "DELETE", f"Transcription/{recording_id}/")

    async def delete_everything(self, auth_id: str, recording_id: str) -> None:
        """Delete the recording's transcription, then the recording; one already gone (404)
        is what was wanted (retention and erasure both)."""
        for remove in (self.delete_transcription, self.delete_recording):
            with suppress(NotFound):
                await remove(auth_id, recording_id)

    @asynccontextmanager
    async def media(
        self, auth_id: str, url: str, original: bool = False, byte_range: str | None = None
    ) -> AsyncIterator[httpx.Response]:
        """A recording's audio at `url` (the Recording object's `recording_url`), streamed: the
        response, to read with `aiter_bytes`. The account's Basic Auth is always sent (Plivo's
        "HTTP Auth on recordings" may be on); `original` asks for the pre-denoised copy, and
        `byte_range` (a `Range` header's value) for part of it. `NotFound` for a 404; a failure
        mid-stream is a `PlivoError` that is `transient`."""
        token = self.credentials.get(auth_id)
        if token is None:
            raise PlivoError(401, f"no credentials configured for {auth_id}")
        params = {"type": "original"} if original else None
        headers = {"range": byte_range} if byte_range else None
        auth = (auth_id, token)
        try:
            async with self.http.stream(
                "GET", url, params=params, headers=headers, auth=auth
            ) as answer:
                if answer.status_code >= 400:
                    await answer.aread()
                    kind = NotFound if answer.status_code == 404 else PlivoError
                    raise kind(answer.status_code, _message(answer))
                yield answer
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as error:
            reason = f"no whole answer from Plivo's media ({type(error).__name__})"
            raise PlivoError(UNREACHABLE, reason) from error


def _message(response: httpx.Response) -> str:
    try:
        document = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(document, dict):
        return str(document.get("error") or document.get("message") or document)[:500]
    return str(document)[:500]


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None
