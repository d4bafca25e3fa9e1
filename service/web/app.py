"""The web process: a Starlette app that takes Plivo's callbacks.

Read in order: `service.web.ingest` (the endpoints), `service.web.body`,
`service.web.plivo_auth`, `service.domain.callbacks`, `service.storage.recordings`; then
`workers/` for what happens to a queued recording.
Plivo's two callback paths are served by `service.web.fast_path`, the rest by Starlette.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from service.dashboard import Dashboard, create_dashboard
from service.domain.media_links import MediaLinks
from service.domain.redaction import Redactor
from service.logs import configure
from service.metrics import Recorder
from service.operations.admin_auth import AdminAuth
from service.operations.backfills import Backfills
from service.operations.erasures import Erasures
from service.operations.health import DeploymentHealth
from service.operations.overview import Overview
from service.operations.recordings import Recordings
from service.operations.redelivery import Redelivery
from service.operations.subscriptions import Subscriptions
from service.plivo.client import PlivoClient
from service.settings import Settings, load_settings
from service.ssrf import URLGuard
from service.storage.archive import Archive
from service.storage.audit import AuditLog
from service.storage.deliveries import Deliveries
from service.storage.erasures import ErasureStore
from service.storage.history import History
from service.storage.holds import Holds
from service.storage.keyring import Keyring
from service.storage.metrics import MetricsStore
from service.storage.reconciliation import BackfillStore
from service.storage.recordings import RecordingStore, connect
from service.storage.sessions import Sessions, Throttle
from service.storage.subject_index import SubjectIndex, index_key
from service.storage.subscriptions import SubscriptionStore
from service.web import errors, http_limits
from service.web.api.backfills import BackfillsAPI
from service.web.api.deliveries import DeliveriesAPI
from service.web.api.erasures import ErasuresAPI
from service.web.api.openapi import openapi
from service.web.api.recordings import RecordingsAPI
from service.web.api.subscriptions import SubscriptionsAPI
from service.web.fast_path import CallbackEndpoint, CallbackRoutes
from service.web.health import HealthAPI, Readiness, healthz
from service.web.ingest import Ingest
from service.web.media import MediaAPI
from service.web.metrics import MetricsAPI
from service.web.plivo_auth import PlivoAuth
from service.web.security_headers import SecurityHeaders

log = logging.getLogger("recording_relay")


def settle_garbage_collector() -> None:
    """Tune the garbage collector for serving, once start-up is done.

    Everything alive now (modules, the app, pydantic's schemas) lives as long as the process:
    `freeze` takes it out of every future collection. Handling a callback allocates many
    short-lived objects and almost no cycles, so young collections can be much rarer than
    CPython's default of one per 700 allocations. In bench/ingest this cut the CPU per callback
    by about a seventh and halved the p99 latency.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def create_app(settings: Settings | None = None, guard: URLGuard | None = None) -> ASGIApp:
    """Build the app; with no settings given, read them from the environment. `guard` checks
    subscriber URLs (tests give one whose DNS never leaves the machine)."""
    settings = settings or load_settings()
    configure(settings.log_level, settings.log_format)
    http_limits.configure(settings.http_request_timeout)
    redis = connect(settings)
    store = RecordingStore(redis, settings.recording_retention_days)
    metrics_store = MetricsStore(redis)
    recorder = Recorder(metrics_store)
    redactor = Redactor.named(settings.redact)
    ingest = Ingest(PlivoAuth(settings), store, recorder, redactor)
    throttle = Throttle(redis, settings.auth_failures_per_address, settings.auth_failures_in_all)
    admin = AdminAuth(settings.admin_secrets, throttle)
    keyring = Keyring(redis)
    links = MediaLinks(settings, keyring)
    archive = Archive(settings.archive_url)
    history = History(archive)
    subscription_store = SubscriptionStore(redis, settings.subscriptions_max)
    fan_out = Deliveries(redis, subscription_store)
    finding = Recordings(store, history, fan_out)
    changing = Subscriptions(
        subscription_store, fan_out, guard or URLGuard(settings.delivery_allow_networks)
    )
    redelivery = Redelivery(fan_out, subscription_store, store, history)
    recordings = RecordingsAPI(finding, admin)
    subscriptions = SubscriptionsAPI(changing, admin)
    deliveries = DeliveriesAPI(redelivery, changing, admin)
    # Audio not archived yet is proxied from Plivo (media downloads are not API requests: no
    # share of the rate limit).
    plivo = PlivoClient(
        settings.plivo_api_url, settings.credentials(), timeout=settings.plivo_timeout
    )
    media = MediaAPI(store, history, plivo, links)
    erasing = Erasures(
        ErasureStore(redis, settings.recording_retention_days),
        store,
        SubjectIndex(archive, index_key(settings, keyring)),
        Holds(archive),
        AuditLog(archive),
    )
    erasures = ErasuresAPI(erasing, admin)
    backfill_store = BackfillStore(redis, settings.recording_retention_days)
    backfill_line = Backfills(backfill_store, settings.backfill_concurrency)
    backfills = BackfillsAPI(backfill_line, admin)
    sessions = Sessions(redis)
    health = DeploymentHealth(redis, fan_out)
    overview = Overview(metrics_store, subscription_store, fan_out, health)
    scraper = AdminAuth([settings.metrics_token], throttle) if settings.metrics_token else None
    metrics = MetricsAPI(scraper, overview)
    dashboard = Dashboard(
        settings,
        overview,
        finding,
        redelivery,
        changing,
        subscription_store,
        fan_out,
        links,
        admin,
        errors.answer_to,
    )
    if not settings.plivo_verify_signatures:
        log.warning("PLIVO_VERIFY_SIGNATURES is off: callbacks are accepted without a signature")
    elif settings.public_base_url is None:
        log.warning(
            "PUBLIC_BASE_URL is unset: Plivo's signatures are checked against the URL each "
            "request arrived at (its Host header; X-Forwarded-Proto only from "
            "FORWARDED_ALLOW_IPS). Behind a PaaS router or proxy, set PUBLIC_BASE_URL to the "
            "URL configured at Plivo (https://relay.example.com), or every callback is refused"
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        reporter = asyncio.create_task(ingest.report())
        flusher = asyncio.create_task(recorder.run())
        settle_garbage_collector()
        yield
        reporter.cancel()
        flusher.cancel()  # it adds what it counted one last time
        await asyncio.gather(flusher, return_exceptions=True)
        await plivo.aclose()
        await store.aclose()
        await redis.aclose()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", Readiness(redis, archive).probe, methods=["GET"]),
        Route("/v1/health", HealthAPI(health, admin).get, methods=["GET"]),
        Route("/v1/recordings", recordings.list, methods=["GET"]),
        Route("/v1/recordings/{recording_id}", recordings.get, methods=["GET"]),
        Route("/v1/recordings/{recording_id}", erasures.erase, methods=["DELETE"]),
        Route("/v1/recordings/{recording_id}/hold", erasures.hold, methods=["PUT"]),
        Route("/v1/recordings/{recording_id}/hold", erasures.release, methods=["DELETE"]),
        Route("/v1/holds", erasures.holds, methods=["GET"]),
        Route("/v1/erasures", erasures.erase_subject, methods=["POST"]),
        Route("/v1/erasures", erasures.list, methods=["GET"]),
        Route("/v1/erasures/{erasure_id}", erasures.get, methods=["GET"]),
        Route("/v1/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", metrics.get, methods=["GET"]),
        Route("/dashboard", lambda _: RedirectResponse("/dashboard/", 308), methods=["GET"]),
        Mount(
            "/dashboard",
            create_dashboard(settings, dashboard, sessions, admin, backfill_line, erasing),
        ),
        Route("/media/{name}", media.get, methods=["GET"]),
        Route("/v1/backfills", backfills.create, methods=["POST"]),
        Route("/v1/backfills", backfills.list, methods=["GET"]),
        Route("/v1/backfills/{backfill_id}", backfills.get, methods=["GET"]),
        Route("/v1/backfills/{backfill_id}", backfills.cancel, methods=["DELETE"]),
        Route("/v1/recordings/{recording_id}/replay", deliveries.replay, methods=["POST"]),
        Route("/v1/subscriptions/{subscription_id}/recover", deliveries.recover, methods=["POST"]),
        Route("/v1/subscriptions/{subscription_id}/attempts", deliveries.attempts, methods=["GET"]),
        Route("/v1/subscriptions", subscriptions.create, methods=["POST"]),
        Route("/v1/subscriptions", subscriptions.list, methods=["GET"]),
        Route("/v1/subscriptions/{subscription_id}", subscriptions.get, methods=["GET"]),
        Route("/v1/subscriptions/{subscription_id}", subscriptions.patch, methods=["PATCH"]),
        Route("/v1/subscriptions/{subscription_id}", subscriptions.delete, methods=["DELETE"]),
        Route(
            "/v1/subscriptions/{subscription_id}/rotate-secret",
            subscriptions.rotate_secret,
            methods=["POST"],
        ),
    ]
    app = Starlette(routes=routes, exception_handlers=errors.HANDLERS, lifespan=lifespan)
    # No redirects to the slash-less or slashed path: Starlette builds them from the request's
    # Host header, which a caller chooses. A wrong path is a 404.
    app.router.redirect_slashes = False
    callbacks = {
        "/plivo/recording": CallbackEndpoint(ingest.recording, ("GET", "POST")),
        "/plivo/transcription": CallbackEndpoint(ingest.transcription, ("POST",)),
    }
    https = (settings.public_base_url or "").startswith("https://")
    return SecurityHeaders(CallbackRoutes(http_limits.BodyLimit(app), callbacks), https=https)
