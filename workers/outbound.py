"""A request the worker makes to an address a subscription gave (a webhook, an OAuth2 token
endpoint): sent on a transport (`service.ssrf.guarded_transport`), one timeout for each of its
phases, and no more of its answer read than the caller keeps."""

from __future__ import annotations

import httpx


def timeouts(seconds: float) -> dict[str, float]:
    """httpx's `timeout` extension: `seconds` to connect, to write, to read, for the pool."""
    return dict.fromkeys(("connect", "read", "write", "pool"), seconds)


async def send(
    transport: httpx.AsyncBaseTransport, request: httpx.Request, at_most: int
) -> tuple[httpx.Response, bytes]:
    """The answer (closed: its status and headers) and the start of its body, read until
    `at_most` bytes (the last chunk may take it past them)."""
    response = await transport.handle_async_request(request)
    received = b""
    try:
        async for chunk in response.aiter_raw():
            received += chunk
            if len(received) >= at_most:
                break
    finally:
        await response.aclose()
    return response, received
