"""The worker process: arq jobs for the pipeline, the webhook dispatcher, and the clients they
share, all from `Settings` (`WorkerProcess`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from typing import Any

import httpx
from arq import Retry
from arq.connections import ArqRedis
from arq.worker import func
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.domain.media_links import MediaLinks
from service.metrics import Recorder
from service.plivo.client import PlivoClient, PlivoError
from service.settings import Settings
from service.ssrf import URLGuard, guarded_transport
from service.storage import connections, heartbeats, jobs, server, upgrade
from service.storage.archive import Archive
from service.storage.deliveries import AttemptsLog, Deliveries, DeliveryQueue
from service.storage.erasures import ErasureStore
from service.storage.heartbeats import Heartbeats
from service.storage.keyring import Keyring
from service.storage.metrics import MetricsStore
from service.storage.rate_limit import RateLimiter
from service.storage.reconciliation import BackfillStatus, BackfillStore, SweepState
from service.storage.recordings import RecordingStore
from service.storage.subject_index import SubjectIndex, index_key
from service.storage.subscriptions import SubscriptionStore
from service.storage.wakeups import Wakeups
from workers.attempts_archive import AttemptsArchive
from workers.delivery import Deliverer
from workers.dispatcher import Dispatcher
from workers.endpoint_auth import Credentials
from workers.erasure import Eraser
from workers.job_worker import JobWorker
from workers.pipeline import Context, Pipeline
from workers.reconciliation import ListingOrder, Reconciler
from workers.redis_outage import outage, redis_loss_is_a_retry, redis_trouble

log = logging.getLogger("recording_relay.worker")
BACKFILL_TURNS_EVERY = 15.0  # seconds between looks at whose turn it is to backfill
RETENTION_LOOKS_EVERY = 300.0  # seconds between looks at whether the day's retention sweep ran


@redis_loss_is_a_retry
async def process_recording(ctx: dict[str, Any], recording_id: str) -> str:
    pipeline: Pipeline = ctx["pipeline"]
    return await pipeline.process(recording_id, ctx["job_try"])


@redis_loss_is_a_retry
async def collect_transcription(ctx: dict[str, Any], recording_id: str) -> str:
    pipeline: Pipeline = ctx["pipeline"]
    return await pipeline.collect(recording_id, ctx["job_try"])


@redis_loss_is_a_retry
async def run_backfill(ctx: dict[str, Any], backfill_id: str) -> str:
    """A backfill asked for through the API, a slice of time per run: it saves how far it got
    and runs again at once, so no run outlasts `WORKER_JOB_TIMEOUT`. It waits its turn
    (`BACKFILL_CONCURRENCY`); as it ends, the next in line is started."""
    reconciler: Reconciler = ctx["reconciler"]
    backfills = reconciler.backfills
    backfill = await backfills.get(backfill_id)
    if backfill is None or backfill.ended:
        return "nothing to do"
    if not await backfills.runs_now(backfill_id, reconciler.settings.backfill_concurrency):
        return "waiting its turn"  # started by `take_turns` when the ones before it end
    budget = max(1.0, ctx["job_timeout"] / 2)
    try:
        backfill = await reconciler.backfill(backfill, budget=budget)
    except PlivoError as error:
        if error.transient:
            raise Retry(defer=10) from error
        backfill.status, backfill.error = BackfillStatus.FAILED, str(error)
    except ListingOrder as error:
        backfill.status, backfill.error = BackfillStatus.FAILED, str(error)
    if backfill.status == BackfillStatus.FAILED:
        await backfills.save(backfill)
    if backfill.status == "running":
        raise Retry(defer=0)
    await reconciler.take_turns()
    return f"{backfill.status}: {backfill.summary()}"


@redis_loss_is_a_retry
async def run_erasure(ctx: dict[str, Any], erasure_id: str) -> str:
    """An erasure (`workers.erasure`), a slice of its recordings a run."""
    eraser: Eraser = ctx["eraser"]
    return await eraser.run(erasure_id, budget=max(1.0, ctx["job_timeout"] / 2))


@redis_loss_is_a_retry
async def delete_recording(ctx: dict[str, Any], recording_id: str) -> str:
    pipeline: Pipeline = ctx["pipeline"]
    return await pipeline.delete(recording_id, ctx["job_try"])


def arq_options(settings: Settings) -> dict[str, Any]:
    """How arq runs the relay's jobs."""
    return {
        "functions": [
            # Retried later through Plivo outages: PLIVO_OUTAGE_WINDOW bounds its tries.
            func(process_recording, name=jobs.PROCESS_RECORDING, max_tries=100_000),
            # Re-deferred once per poll: its tries are polls, bounded by the deadline instead.
            func(collect_transcription, name=jobs.COLLECT_TRANSCRIPTION, max_tries=100_000),
            func(delete_recording, name=jobs.DELETE_RECORDING, max_tries=10),
            # Runs again until its window is walked: each run is a slice of it.
            func(run_backfill, name=jobs.RUN_BACKFILL, max_tries=1_000_000),
            # Runs again until every recording is erased: waits, outages and slices are tries.
            func(run_erasure, name=jobs.RUN_ERASURE, max_tries=1_000_000),
        ],
        "queue_name": jobs.QUEUE,
        "max_jobs": settings.worker_max_jobs,
        # A killed worker's job is taken up again once its lock lapses: timeout + 10 s.
        "job_timeout": settings.worker_job_timeout,
        # No result is kept: the recording's state is the record of what was done (a result
        # would cost Redis some 400 bytes a job for an hour).
        "keep_result": 0,
        # Signals are the process's (`WorkerProcess.stop`), not one arq worker's.
        "handle_signals": False,
    }


class WorkerProcess:
    """One worker process: arq's worker for the pipeline's jobs and the webhook dispatcher.

    The clients and the one dispatcher live as long as the process. arq's worker ends when it
    loses Redis; its running jobs get `WORKER_SHUTDOWN_GRACE` seconds to ride it out
    (`workers.redis_outage`), then the process waits for Redis (saying which `REDIS_URL`) and
    starts a new arq worker on the same clients, so there is never a second dispatcher, and the
    PaaS sees no crash. `stop` (SIGTERM, SIGINT) is remembered whatever the process is doing:
    no job or webhook is taken after it, those running get `WORKER_SHUTDOWN_GRACE` seconds to
    finish and be recorded, the rest are handed back (their locks and leases lapse), and `run`
    returns.
    """

    def __init__(self, settings: Settings, **arq_overrides: Any) -> None:
        self.settings = settings
        self.arq_overrides = arq_overrides  # tests set a shorter `job_timeout`
        # Every connection of the process comes out of REDIS_MAX_CONNECTIONS: this pool, shared
        # by jobs, deliveries, metrics and sweeps, and the wake-up listener's one.
        self.redis = ArqRedis(pool_or_conn=connections.worker_pool(settings))
        self.arq: JobWorker | None = None
        self._arq_main: asyncio.Task[None] | None = None
        self.signal: str | None = None
        self.exit_status = 0  # 2: Redis's configuration loses work (its eviction policy)
        self.name = heartbeats.this_process()
        self._stopping = asyncio.Event()
        self._build()

    def _build(self) -> None:
        settings, redis = self.settings, self.redis
        limit, window = settings.plivo_rate_limit
        self.metrics = Recorder(MetricsStore(redis))
        self.plivo = PlivoClient(
            settings.plivo_api_url,
            settings.credentials(),
            limiter=RateLimiter(redis, limit, window),
            timeout=settings.plivo_timeout,
            retries=settings.plivo_retries,
            metrics=self.metrics,
        )
        self.store = RecordingStore(redis, settings.recording_retention_days)
        subscriptions = SubscriptionStore(redis, settings.subscriptions_max)
        guard = URLGuard(settings.delivery_allow_networks)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        self.webhooks = guarded_transport(guard, limits)
        self.archive = Archive(settings.archive_url)
        deliveries = self.deliveries = Deliveries(
            redis, subscriptions, settings.delivery_max_in_flight
        )
        delivery_queue = DeliveryQueue(
            redis,
            settings.delivery_max_in_flight,
            holder=self.name,
            # A worker that has not beaten for this long is dead: what it held is released.
            lapse=max(settings.delivery_timeout + 10, 3 * heartbeats.EVERY),
            retention=settings.recording_retention_days * 86_400,
        )
        keyring = Keyring(redis)
        links = MediaLinks(settings, keyring)
        index = self.index = SubjectIndex(self.archive, index_key(settings, keyring))
        self.credentials = Credentials(self.webhooks, guard, limits, settings.delivery_timeout)
        deliverer = Deliverer(
            settings,
            subscriptions,
            deliveries,
            delivery_queue,
            self.credentials,
            self.metrics,
            links,
        )
        self.wakeups = Wakeups(connections.listener(settings))
        self.dispatcher = Dispatcher(
            delivery_queue, deliverer, settings.delivery_concurrency, self.wakeups
        )
        self.attempts_archive = AttemptsArchive(
            AttemptsLog(redis), self.archive, self.name, self.store
        )
        self.pipeline = Pipeline(
            Context(
                settings,
                self.store,
                self.plivo,
                redis,
                deliveries,
                self.archive,
                self.metrics,
                self.dispatcher,
                links,
                index,
            )
        )
        self.eraser = Eraser(
            settings,
            ErasureStore(redis, settings.recording_retention_days),
            self.store,
            self.archive,
            index,
            self.plivo,
            deliveries,
            self.dispatcher,
            redis,
        )
        # Listing for sweeps and backfills takes at most its share of the account's limit.
        share = RateLimiter(redis, limit, window).share("reconcile", settings.reconcile_rate_share)
        self.listing = PlivoClient(
            settings.plivo_api_url,
            settings.credentials(),
            limiter=share,
            timeout=settings.plivo_timeout,
            retries=settings.plivo_retries,
            metrics=self.metrics,
        )
        self.reconciler = Reconciler(
            settings,
            self.store,
            self.listing,
            SweepState(redis),
            BackfillStore(redis, settings.recording_retention_days),
            self.metrics,
        )
        self.heartbeats = Heartbeats(redis)
        self._sweeper: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._beating: asyncio.Task[None] | None = None
        self._archiving: asyncio.Task[None] | None = None
        self._backfill_turns: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None

    def stop(self, signal_name: str = "stop") -> None:
        """Stop taking work and shut down (safe to call any number of times, at any moment)."""
        if self.signal is None:
            self.signal = signal_name
            log.info("shutdown on %s: finishing what is running", signal_name)
        self._stopping.set()
        if self.arq is not None:
            self.arq.allow_pick_jobs = False
        self.dispatcher.stop_claiming()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stop, signum.name)

    async def run(self) -> None:
        """Work until `stop`, riding out Redis going away; then shut down cleanly."""
        if self.settings.public_base_url is None:
            log.warning(
                "PUBLIC_BASE_URL is unset: Plivo cannot call back when a transcription is "
                "ready, so transcriptions are found by polling only"
            )
        try:
            if await self._wait_for_redis() and await self._policy_keeps_work():
                await upgrade.take_up_old_deliveries(self.redis, self.deliveries)
                self._beating = asyncio.create_task(self._beat(), name="heartbeat")
                self._backfill_turns = asyncio.create_task(self._keep_backfills_going())
                self._archiving = asyncio.create_task(self.attempts_archive.run(), name="attempts")
                self.wakeups.start()
                self._flusher = asyncio.create_task(self.metrics.run(), name="metrics")
                self.dispatcher.start()
                if self.settings.reconcile_interval > 0:
                    self._sweeper = asyncio.create_task(self._sweep_now_and_then(), name="sweeper")
                if self.settings.archive_retention_days is not None:
                    self._retention = asyncio.create_task(self._keep_retention(), name="retention")
                while not self._stopping.is_set():
                    if await self._run_arq() == "finished":
                        break
                    if not await self._wait_for_redis():
                        break
        finally:
            await self._shut_down()

    async def _policy_keeps_work(self) -> bool:
        """Whether Redis keeps what it is given (`noeviction`); checked at start-up too, but
        a worker may have started before Redis answered."""
        problem = await server.policy_problem(self.redis)
        if problem is not None:
            log.error("configuration error: %s", problem)
            self.exit_status = 2
        return problem is None

    async def _beat(self) -> None:
        """Tell the health report this worker is alive, every `heartbeats.EVERY` seconds."""
        while not self._stopping.is_set():
            try:
                await self.heartbeats.beat(self.name)
            except (RedisError, OSError) as error:
                log.debug("heartbeat not written (%s)", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), heartbeats.EVERY)

    async def _keep_backfills_going(self) -> None:
        """Every `BACKFILL_TURNS_EVERY` seconds, queue the job of each backfill whose turn it
        is: one whose job died (a timeout, a lost worker) goes on, none stays `running` with
        no job (a job queued or running already is left as it is)."""
        while not self._stopping.is_set():
            try:
                await self.reconciler.take_turns()
            except (RedisError, OSError) as error:
                log.debug("backfills' turns not checked (%s)", error)
            await self._rest(BACKFILL_TURNS_EVERY)

    async def _sweep_now_and_then(self) -> None:
        """Look a few times an interval whether it is this worker's turn to sweep (the turn is
        a lock in Redis that lapses after `RECONCILE_INTERVAL`: one sweep an interval in all)."""
        interval = self.settings.reconcile_interval
        while not self._stopping.is_set():
            try:
                await self.reconciler.sweep()
            except (PlivoError, RedisError, OSError) as error:
                log.warning("reconciliation sweep cut short (%s); the next one repeats it", error)
            except Exception:
                log.exception("reconciliation sweep failed; the next one repeats it")
            await self._rest(min(interval / 4, 15.0))

    async def _keep_retention(self) -> None:
        """Look every few minutes whether the day's retention sweep is this worker's to start
        (one a day for the whole deployment: `Eraser.sweep_retention`)."""
        while not self._stopping.is_set():
            try:
                await self.eraser.sweep_retention()
            except (RedisError, OSError) as error:
                log.warning("retention sweep not started (%s); trying again shortly", error)
            await self._rest(RETENTION_LOOKS_EVERY)

    async def _rest(self, seconds: float) -> None:
        """Wait about `seconds` (+/-20%: workers started together drift apart), or until the
        process is told to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds * random.uniform(0.8, 1.2))

    async def _run_arq(self) -> str:
        """One arq worker's life: `finished` (burst mode), `stopping`, or `lost` (Redis)."""
        options = {**arq_options(self.settings), **self.arq_overrides}
        context = {
            "pipeline": self.pipeline,
            "reconciler": self.reconciler,
            "eraser": self.eraser,
            "job_timeout": options["job_timeout"],
        }
        self.arq = JobWorker(self.wakeups, redis_pool=self.redis, ctx=context, **options)
        self.arq.allow_pick_jobs = not self._stopping.is_set()
        main = self._arq_main = asyncio.create_task(self.arq.main())
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not main.done():
            return "stopping"  # `_shut_down` lets its jobs finish
        try:
            main.result()
            return "finished"
        except Exception as error:
            if not redis_trouble(error):
                raise
            log.warning("%s; starting again once it takes writes", outage(error))
            # Its jobs lost Redis too: each waits for it, then asks arq to run it again.
            await self._finish_jobs(self.settings.worker_shutdown_grace)
            return "lost"

    async def _finish_jobs(self, grace: float) -> None:
        """Give the arq worker's running jobs `grace` seconds, then cancel the rest: their locks
        lapse and another worker (or this one, once Redis is back) runs them again."""
        jobs = list(self.arq.tasks.values()) if self.arq is not None else []
        if jobs:
            _, late = await asyncio.wait(jobs, timeout=grace)
            for task in late:
                task.cancel()  # arq hands a cancelled job back to the queue
            await asyncio.gather(*jobs, return_exceptions=True)

    async def _wait_for_redis(self) -> bool:
        """True once Redis answers and takes writes (a full one refuses them); False if the
        process is told to stop first."""
        delay, said = 0.2, False
        while not self._stopping.is_set():
            try:
                await self.redis.ping()
                if not await server.writable(self.redis):
                    raise OutOfMemoryError("Redis refuses writes (OOM: maxmemory reached)")
                if said:
                    log.info("Redis answers again")
                return True
            except (RedisConnectionError, RedisTimeoutError, OutOfMemoryError, OSError) as error:
                if not said:
                    url = self.settings.redis_url_for_logs
                    log.warning("waiting for Redis at %s (%s)", url, error)
                    said = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, 5.0)
        return False

    async def _shut_down(self) -> None:
        """Give running jobs and webhook attempts the grace period, together; hand back the
        rest; close the clients."""
        self.stop(self.signal or "stop")
        grace = self.settings.worker_shutdown_grace
        arq = self.arq
        tasks = (
            self._sweeper,
            self._beating,
            self._archiving,
            self._backfill_turns,
            self._retention,
        )
        for task in tasks:
            if task is not None:
                task.cancel()  # a sweep cut short is repeated by the next
                await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(self._finish_jobs(grace), self.dispatcher.stop(grace))
        if self._arq_main is not None:
            self._arq_main.cancel()
            await asyncio.gather(self._arq_main, return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            # What it cut short is due again now; then it is no longer a worker. (If Redis is
            # away, its heartbeat lapses instead and another worker releases them.)
            released = await self.dispatcher.queue.release(self.name)
            if released:
                log.info("%d webhook attempts cut short are due again", released)
            if arq is not None:
                await self.redis.delete(arq.health_check_key)
        log.info(
            "shut down: %d jobs complete, %d failed, %d retried",
            arq.jobs_complete if arq else 0,
            arq.jobs_failed if arq else 0,
            arq.jobs_retried if arq else 0,
        )
        await self.close_clients()

    async def close_clients(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()  # it adds what it counted one last time
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.wakeups.aclose()
        await self.plivo.aclose()
        await self.listing.aclose()
        await self.store.aclose()
        await self.webhooks.aclose()
        await self.credentials.aclose()
        await self.redis.aclose()
