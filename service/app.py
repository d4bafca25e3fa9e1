"""The web process: a Starlette app that takes Plivo's callbacks.

Read in order: `service.ingest` (the endpoints), `service.body`, `service.plivo_auth`,
`service.callbacks`, `service.store`; then `workers/` for what happens to a queued recording.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from service import errors
from service.health import Readiness, healthz
from service.ingest import Ingest
from service.logs import configure
from service.plivo_auth import PlivoAuth
from service.settings import Settings, load_settings
from service.store import RecordingStore, connect

log = logging.getLogger("recording_relay")


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app; with no settings given, read them from the environment."""
    settings = settings or load_settings()
    configure(settings.log_level)
    redis = connect(settings.redis_url)
    store = RecordingStore(redis, settings.recording_retention_days)
    ingest = Ingest(PlivoAuth(settings), store)
    if not settings.plivo_verify_signatures:
        log.warning("PLIVO_VERIFY_SIGNATURES is off: callbacks are accepted without a signature")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    routes = [
        Route("/plivo/recording", ingest.recording, methods=["GET", "POST"]),
        Route("/plivo/transcription", ingest.transcription, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", Readiness(redis).probe, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers=errors.HANDLERS, lifespan=lifespan)
    app.state.settings = settings
    app.state.store = store
    return app
