"""The worker process: arq jobs for the pipeline, the webhook dispatcher, and the clients they
share, all from `Settings`."""

from __future__ import annotations

import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from arq import Retry
from arq.connections import RedisSettings
from arq.worker import Worker, func
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service import queue
from service.deliveries import Deliveries
from service.plivo import PlivoClient
from service.rate_limit import RateLimiter
from service.settings import Settings
from service.ssrf import URLGuard, guarded_transport
from service.store import RecordingStore
from service.subscriptions import SubscriptionStore
from workers.delivery import Deliverer
from workers.delivery_queue import DeliveryQueue
from workers.dispatcher import Dispatcher
from workers.pipeline import Pipeline

log = logging.getLogger("recording_relay.worker")
REDIS_LOSS_DEFER = 2.0
Job = TypeVar("Job", bound=Callable[..., Awaitable[str]])


def redis_loss_is_a_retry(job: Job) -> Job:
    """arq ends a job that raises for good; losing Redis mid-job must instead run it again.

    Every job is safe to re-run, so it is deferred rather than failed (if Redis is still away
    the job stays queued under its lock, and is taken up again once the lock lapses).
    """

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: str) -> str:
        try:
            return await job(ctx, *args)
        except (RedisConnectionError, RedisTimeoutError) as error:
            log.warning("%s: lost Redis (%s); it runs again later", job.__name__, error)
            raise Retry(defer=REDIS_LOSS_DEFER) from error

    return run  # type: ignore[return-value]


@redis_loss_is_a_retry
async def process_recording(ctx: dict[str, Any], recording_id: str) -> str:
    pipeline: Pipeline = ctx["pipeline"]
    return await pipeline.process(recording_id, ctx["job_try"])


@redis_loss_is_a_retry
async def collect_transcription(ctx: dict[str, Any], recording_id: str) -> str:
    pipeline: Pipeline = ctx["pipeline"]
    return await pipeline.collect(recording_id, ctx["job_try"])


@redis_loss_is_a_retry
async def delete_recording(ctx: dict[str, Any], recording_id: str) -> str:
    pipeline: Pipeline = ctx["pipeline"]
    return await pipeline.delete(recording_id, ctx["job_try"])


class RelayWorker(Worker):
    """arq's worker, and beside its jobs the webhook dispatcher (`workers.dispatcher`)."""

    def handle_sig(self, signum: signal.Signals) -> None:
        dispatcher: Dispatcher | None = self.ctx.get("dispatcher")
        if dispatcher is not None:
            dispatcher.stop_claiming()  # as arq stops picking jobs
        super().handle_sig(signum)


def build_worker(settings: Settings, **overrides: Any) -> RelayWorker:
    """An arq worker for the relay's jobs; `overrides` are passed to arq (tests use `burst`)."""

    async def startup(ctx: dict[str, Any]) -> None:
        redis = ctx["redis"]
        limit, window = settings.plivo_rate_limit
        credentials = {
            auth_id: token.get_secret_value()
            for auth_id, token in [
                (settings.plivo_auth_id, settings.plivo_auth_token),
                *settings.plivo_subaccounts.items(),
            ]
        }
        plivo = PlivoClient(
            settings.plivo_api_url,
            credentials,
            limiter=RateLimiter(redis, limit, window),
            timeout=settings.plivo_timeout,
            retries=settings.plivo_retries,
        )
        store = RecordingStore(redis, settings.recording_retention_days)
        subscriptions = SubscriptionStore(redis, settings.subscriptions_max)
        deliveries = Deliveries(redis, subscriptions)
        guard = URLGuard(settings.delivery_allow_networks)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        webhooks = guarded_transport(guard, limits)
        ctx["plivo"], ctx["store"], ctx["webhooks"] = plivo, store, webhooks
        ctx["pipeline"] = Pipeline(settings, store, plivo, redis, deliveries)
        delivery_queue = DeliveryQueue(
            redis,
            settings.delivery_max_in_flight,
            lease=settings.delivery_timeout + 10,
            retention=settings.recording_retention_days * 86_400,
        )
        deliverer = Deliverer(settings, redis, subscriptions, deliveries, delivery_queue, webhooks)
        ctx["dispatcher"] = Dispatcher(delivery_queue, deliverer, settings.delivery_concurrency)
        ctx["dispatcher"].start()
        if settings.public_base_url is None:
            log.warning(
                "PUBLIC_BASE_URL is unset: Plivo cannot call back when a transcription is "
                "ready, so transcriptions are found by polling only"
            )

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "dispatcher" in ctx:
            await ctx["dispatcher"].stop(settings.worker_shutdown_grace)
        if "plivo" in ctx:
            await ctx["plivo"].aclose()
            await ctx["store"].aclose()
            await ctx["webhooks"].aclose()

    options: dict[str, Any] = {
        "functions": [
            # Retried later through Plivo outages: PLIVO_OUTAGE_WINDOW bounds its tries.
            func(process_recording, name=queue.PROCESS_RECORDING, max_tries=100_000),
            # Re-deferred once per poll: its tries are polls, bounded by the deadline instead.
            func(collect_transcription, name=queue.COLLECT_TRANSCRIPTION, max_tries=100_000),
            func(delete_recording, name=queue.DELETE_RECORDING, max_tries=10),
        ],
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": queue.QUEUE,
        "max_jobs": settings.worker_max_jobs,
        "on_startup": startup,
        "on_shutdown": shutdown,
        # A killed worker's job is taken up again once its lock lapses: timeout + 10 s.
        "job_timeout": settings.worker_job_timeout,
        # On SIGTERM stop taking jobs, let running ones finish for this long, then hand the
        # rest back to the queue (arq re-queues cancelled jobs).
        "job_completion_wait": settings.worker_shutdown_grace,
        "keep_result": 3600,
        # How often an idle worker looks for new jobs (arq's default, 0.5 s, would add 250 ms
        # on average before each step of a recording); a poll is one cheap Redis command.
        "poll_delay": 0.05,
    }
    options.update(overrides)
    return RelayWorker(**options)
