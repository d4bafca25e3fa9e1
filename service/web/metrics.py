"""`GET /metrics`: the whole deployment's metrics in Prometheus's text format (`service.metrics`),
behind `Authorization: Bearer $METRICS_TOKEN`; with no `METRICS_TOKEN`, no metrics (404): the
scraper's token is its own, so rotating the admin tokens never breaks it."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from service.metrics import COUNTERS, HISTOGRAMS, series
from service.operations.admin_auth import AdminAuth
from service.operations.health import HealthReport
from service.operations.overview import Overview
from service.storage.metrics import Series

QUEUE_DEPTH = "relay_queue_depth"


class MetricsAPI:
    """`GET /metrics`."""

    def __init__(self, auth: AdminAuth | None, overview: Overview) -> None:
        self.auth = auth
        self.overview = overview

    async def get(self, request: Request) -> Response:
        if self.auth is None:
            raise HTTPException(404, "metrics are off: set METRICS_TOKEN to serve them")
        await self.auth.check(request)
        subscriptions, _ = await self.overview.subscriptions.scan()
        queues, _ = await self.overview.depths(subscriptions)
        totals = await self.overview.metrics.totals()
        health = await self.overview.deployment.report()
        return Response(exposition(totals, queues, health), media_type=CONTENT_TYPE_LATEST)


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
