"""Bounds on what one HTTP request may cost the web process before the app sees it.

uvicorn (with httptools) puts no limit on a request's head and waits for ever for a request
that is sent slowly, so a few clients can fill the process's memory with headers or hold its
connections open with half-sent requests. `BoundedHttpToolsProtocol` is an HTTP protocol for
uvicorn that answers `431` to a request line and headers over 64 KiB and `408` to a request not
fully received within `HTTP_REQUEST_TIMEOUT` seconds of its first byte (or of the connection,
for one that sends nothing), closing the connection either way. Plivo's callbacks are small
and sent at once: both bounds are far from anything Plivo does.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
LINGER_SECONDS = 1.0


class HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing an oversized head."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = MAX_HEAD_BYTES
    timeout = 10.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._in_head = True  # the next bytes belong to a request line or headers
        self._head_bytes = 0
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
            self._head_bytes += len(data)
        super().data_received(data)
        # httptools buffers an unfinished header itself: refuse before it holds much.
        if self._in_head and self._head_bytes > self.max_head_bytes:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, self._too_large())

    # -- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head, self._head_bytes = True, 0
        super().on_message_complete()

    # -- refusals --------------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, which is how `HeadTooLarge` surfaces."""
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


def configure(timeout: float) -> None:
    """Set the bounds from the settings. uvicorn builds the protocol from its import path in
    every web process (`WEB_CONCURRENCY`), so the app, built in each, sets them there."""
    BoundedHttpToolsProtocol.timeout = timeout
