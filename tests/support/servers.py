"""Serving an ASGI app for real (uvicorn, loopback, a free port) inside a test's event loop."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp


@asynccontextmanager
async def serve(
    app: ASGIApp, port: int = 0, within: float = 10.0, tls: dict[str, str] | None = None
) -> AsyncIterator[str]:
    """Run `app` on 127.0.0.1 (on `port`, or a free one) and yield its base URL; shut it down
    afterwards. `tls` (`Authority.files`): HTTPS, asking every client for a certificate that
    its CA signed."""
    options: dict[str, object] = {}
    if tls is not None:
        options = {
            "ssl_certfile": tls["cert"],
            "ssl_keyfile": tls["key"],
            "ssl_ca_certs": tls["ca"],
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
        }
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,  # a test subscriber may hold a request open forever
        **options,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(within):
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped before it started")
            await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
