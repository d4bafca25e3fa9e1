"""Metrics: what the relay counts, and `/metrics` in Prometheus's text format.

Every web and worker process counts in memory (`Recorder`: a dict increment on the hot path)
and adds its counts to totals in Redis every `FLUSH_EVERY` seconds (`service.storage.metrics`),
so any web process serves the whole deployment's figures, however many web and worker
processes the PaaS runs and however often they restart: scrape one URL, sum nothing. A process
that dies loses at most its last few seconds of counts; one with nothing to add sends nothing.
Queue depths are read from Redis at each scrape.

`/metrics` takes `Authorization: Bearer $METRICS_TOKEN` (or `ADMIN_TOKEN` when unset).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from redis.exceptions import RedisError

from service.storage.metrics import MetricsStore, Series

if TYPE_CHECKING:
    from service.web.health import HealthReport

log = logging.getLogger("recording_relay.metrics")
FLUSH_EVERY = 5.0

COUNTERS = {
    "relay_callbacks_total": "Plivo's callbacks, by kind (recording, transcription) and outcome",
    "relay_recordings_accepted_total": "Recordings taken up, by source (callback, "
    "reconciliation, backfill)",
    "relay_recordings_total": "Recordings that reached a final state, by status",
    "relay_plivo_requests_total": "Requests to Plivo's API, by endpoint and status",
    "relay_webhook_attempts_total": "Webhook attempts, by outcome (succeeded, retry, failed, "
    "dropped)",
}
HISTOGRAMS = {
    "relay_webhook_delivery_seconds": (
        "From an event queued for a subscriber to its 2xx",
        (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 36000),
    ),
    "relay_transcription_seconds": (
        "From a transcription requested to all of it collected",
        (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600),
    ),
}
QUEUE_DEPTH = "relay_queue_depth"


def series(name: str, **labels: str) -> Series:
    return name, tuple(sorted(labels.items()))


class Recorder:
    """One process's counts since they were last added to Redis."""

    def __init__(self, store: MetricsStore) -> None:
        self.store = store
        self.pending: defaultdict[Series, float] = defaultdict(float)
        # Counted elsewhere (a hot path's own counter), taken at each flush.
        self.sources: list[Callable[[], dict[Series, float]]] = []

    def count(self, name: str, amount: float = 1, **labels: str) -> None:
        assert name in COUNTERS, name
        self.pending[series(name, **labels)] += amount

    def observe(self, name: str, value: float) -> None:
        """One observation of histogram `name` (kept per bucket; `/metrics` adds them up)."""
        bounds = HISTOGRAMS[name][1]
        index = bisect.bisect_left(bounds, value)
        le = str(bounds[index]) if index < len(bounds) else "+Inf"
        self.pending[series(name, le=le)] += 1
        self.pending[series(f"{name}_sum")] += value
        self.pending[series(f"{name}_count")] += 1

    async def flush(self) -> None:
        """Add the pending counts to Redis's; kept for the next flush if Redis is away."""
        for source in self.sources:
            for series_, amount in source().items():
                self.pending[series_] += amount
        counted, self.pending = self.pending, defaultdict(float)
        if not counted:
            return  # nothing to add: no command at all
        try:
            await self.store.add(dict(counted))
        except (RedisError, OSError) as error:
            for series_, amount in counted.items():
                self.pending[series_] += amount
            log.debug("metrics not added yet (%s)", error)

    async def run(self) -> None:
        """Flush every `FLUSH_EVERY` seconds, for ever (a task); cancelled, one last time."""
        try:
            while True:
                await asyncio.sleep(FLUSH_EVERY)
                await self.flush()
        finally:
            with contextlib.suppress(RedisError, OSError):
                await asyncio.shield(self.flush())


class _Snapshot:
    """A prometheus_client collector over totals read from Redis a moment ago."""

    def __init__(
        self, totals: dict[Series, float], depths: dict[str, int], health: HealthReport | None
    ) -> None:
        self.totals = totals
        self.depths = depths
        self.health = health

    def collect(self) -> Iterator[Metric]:
        for name, documentation in COUNTERS.items():
            found = [(s, v) for s, v in self.totals.items() if s[0] == name]
            names = sorted({k for s, _ in found for k, _ in s[1]})
            family = CounterMetricFamily(name.removesuffix("_total"), documentation, labels=names)
            for (_, labels), value in sorted(found):
                given = dict(labels)
                family.add_metric([given.get(k, "") for k in names], value)
            yield family
        for name, (documentation, bounds) in HISTOGRAMS.items():
            cumulative, buckets = 0.0, []
            for le in [*(str(b) for b in bounds), "+Inf"]:
                cumulative += self.totals.get(series(name, le=le), 0.0)
                buckets.append((le, cumulative))
            total = self.totals.get(series(f"{name}_sum"), 0.0)
            yield HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=total)
        gauge = GaugeMetricFamily(QUEUE_DEPTH, "Work waiting now, by queue", labels=["queue"])
        for queue, depth in sorted(self.depths.items()):
            gauge.add_metric([queue], depth)
        yield gauge
        if self.health is not None:
            yield from _health(self.health)


def _health(report: HealthReport) -> Iterator[Metric]:
    """The health report's figures (`GET /v1/health`) as gauges."""
    yield GaugeMetricFamily(
        "relay_workers_alive",
        "Worker processes with a recent heartbeat",
        value=report.workers["alive"],
    )
    oldest = GaugeMetricFamily(
        "relay_queue_oldest_due_seconds",
        "How long the oldest due work has waited (0: none waits)",
        labels=["queue"],
    )
    for queue, name in (
        ("jobs", "oldest_due_job_seconds"),
        ("webhooks", "oldest_due_webhook_seconds"),
    ):
        oldest.add_metric([queue], report.queues[name] or 0.0)
    yield oldest
    redis = report.redis
    for name, field, documentation in (
        ("relay_redis_used_memory_bytes", "used_memory", "Redis's used_memory"),
        ("relay_redis_maxmemory_bytes", "maxmemory", "Redis's maxmemory (0: no limit)"),
        ("relay_redis_connected_clients", "connected_clients", "Connections Redis has open"),
        ("relay_redis_maxclients", "maxclients", "Connections Redis allows"),
        (
            "relay_redis_rejected_connections",
            "rejected_connections",
            "Connections Redis refused since it started",
        ),
    ):
        if redis.get(field) is not None:
            yield GaugeMetricFamily(name, documentation, value=redis[field])
    yield GaugeMetricFamily(
        "relay_health_warnings", "Warnings in the health report", value=len(report.warnings)
    )


def exposition(
    totals: dict[Series, float], depths: dict[str, int], health: HealthReport | None = None
) -> bytes:
    """The metrics in Prometheus's text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(totals, depths, health))
    exposed: bytes = generate_latest(registry)
    return exposed


def total(totals: Iterable[tuple[Series, float]], name: str, **labels: str) -> float:
    """The sum of `name`'s series whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, given), v in totals if n == name and wanted <= set(given))
