"""Bounds on what one HTTP request may cost the web process before the app sees it.

uvicorn (with httptools) puts no limit on a request's head or body and waits for ever for a
request that is sent slowly, so a few clients can fill the process's memory with headers or
bodies, or hold its connections open with half-sent requests. `BoundedHttpToolsProtocol` is an
HTTP protocol for uvicorn that answers, before the app sees the request, and closing the
connection:

- `431` to a request line and headers over 64 KiB;
- `413` to a body over its path's limit (`body_limit`): 64 KiB, but for Plivo's transcription
  callback, which carries a call's whole transcript (1 MiB: a 4-hour call's is about 250 KB),
  whether its `Content-Length` says so or its chunks add up to it;
- `408` to a request not fully received within `HTTP_REQUEST_TIMEOUT` seconds of its first
  byte (or of the connection, for one that sends nothing).

Plivo's callbacks are small and sent at once: these bounds are far from anything Plivo does.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024
# Plivo's transcription callback carries the transcript's text: 4 hours of speech (about
# 36,000 words) form-encoded is about 250 KB.
TRANSCRIPTION_PATH = b"/plivo/transcription"
MAX_TRANSCRIPTION_BYTES = 1024 * 1024
LINGER_SECONDS = 1.0


def body_too_large(limit: int) -> str:
    """What a body over `limit` bytes is answered (413), wherever it is refused."""
    return f"body over {limit // 1024} KiB"


def body_limit(target: bytes) -> int:
    """The largest body a request to `target` (its path and query) may carry."""
    path = target.split(b"?", 1)[0]
    return MAX_TRANSCRIPTION_BYTES if path == TRANSCRIPTION_PATH else MAX_BODY_BYTES


class HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing an oversized head."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a bounded request head and a deadline for each request."""

    max_head_bytes = MAX_HEAD_BYTES
    timeout = 10.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._in_head = True  # the next bytes belong to a request line or headers
        self._head_bytes = 0  # of this request's line and headers, as parsed
        self._raw_bytes = 0  # received since this request began, while its head is unfinished
        self._target = b""
        self._body_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: what the client still sends is dropped
        if self._in_head:
            self._raw_bytes += len(data)
        super().data_received(data)
        # httptools buffers an unfinished header itself: refuse before it holds much. (Once the
        # head is complete, what came with it is the body's, and the body has its own limit.)
        if self._in_head and self._raw_bytes > self.max_head_bytes:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, self._too_large())

    # -- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self._target += url
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        limit = body_limit(self._target)
        declared = next((v for name, v in self.headers if name == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, body_too_large(limit))
            return  # the app never sees it
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._body_bytes += len(body)
        limit = body_limit(self._target)
        if self._body_bytes > limit:  # chunks that add up to too much
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, body_too_large(limit))
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head, self._head_bytes, self._raw_bytes = True, 0, 0
        self._target, self._body_bytes = b"", 0
        if not self._refused:
            super().on_message_complete()

    # -- refusals --------------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, which is how `HeadTooLarge` surfaces."""
        if self._refused:
            return  # answered already (a body too large, refused as its bytes came)
        if self._head_bytes > self.max_head_bytes:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, self._too_large())
        else:
            super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            raise HeadTooLarge

    def _too_large(self) -> str:
        return f"request line and headers over {self.max_head_bytes // 1024} KiB"

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.transport.close()  # the app is answering: nothing more can be said
            return
        reason = f"request not received within {self.timeout:g} s"
        self._refuse(HTTPStatus.REQUEST_TIMEOUT, reason)

    def _refuse(self, status: HTTPStatus, reason: str) -> None:
        if self.transport.is_closing() or self._refused:
            return
        self._refused = True
        self._disarm()
        body = json.dumps({"error": reason}).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status.value, status.phrase.encode(), len(body), body)
        )
        # A lingering close: closing with the client's bytes still unread would reset the
        # connection and could lose the answer; stop sending, drop what comes, close shortly.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app, if it runs, is heard by no one
            self.cycle.message_event.set()


class BodyLimit:
    """The same body limits inside the app, for a server without the protocol above (the
    tests', a PaaS's own): a body whose `Content-Length` is over its path's limit is answered
    413 before the app reads it, and one whose chunks add up to more ends as a disconnect."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope.get("raw_path") or scope["path"].encode())
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            body = json.dumps({"error": body_too_large(limit)}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                return {"type": "http.disconnect"}
            return message

        await self.app(scope, bounded, send)


def configure(timeout: float) -> None:
    """Set the bounds from the settings. uvicorn builds the protocol from its import path in
    every web process (`WEB_CONCURRENCY`), so the app, built in each, sets them there."""
    BoundedHttpToolsProtocol.timeout = timeout
