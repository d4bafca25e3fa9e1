"""What the dashboard's overview shows: counts over the last hour and day, the last hour drawn
per minute (an SVG made here: no script or chart library), queue depths, and each
subscription's health.

Counts come from the metrics' minute and hour buckets (`service.storage.metrics`), which every
process adds to, so they cover the whole deployment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from html import escape
from typing import Any

from markupsafe import Markup

from service.domain.subscriptions import Subscription
from service.metrics import total
from service.operations.health import DeploymentHealth
from service.storage import jobs
from service.storage.deliveries import Deliveries
from service.storage.metrics import MetricsStore, Series
from service.storage.subscriptions import SubscriptionStore

HEALTH_ATTEMPTS = 100  # the attempts a subscription's success rate is taken over


@dataclass(frozen=True)
class Counts:
    """The recordings and webhooks of a period, as the overview counts them."""

    accepted: int
    transcribed: int
    failed: int
    delivered: int


@dataclass(frozen=True)
class Health:
    """One subscription's health: its recent attempts, its failing run, what waits for it."""

    subscription: Subscription
    attempts: int  # of the last HEALTH_ATTEMPTS
    succeeded: int
    failing_since: float | None
    waiting: int

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.attempts if self.attempts else None


def counts(buckets: list[dict[Series, float]]) -> Counts:
    rows = [item for bucket in buckets for item in bucket.items()]
    return Counts(
        accepted=int(total(rows, "relay_recordings_accepted_total")),
        transcribed=int(total(rows, "relay_recordings_total", status="transcribed")),
        failed=int(total(rows, "relay_recordings_total", status="failed")),
        delivered=int(total(rows, "relay_webhook_attempts_total", outcome="succeeded")),
    )


def per_minute(buckets: list[dict[Series, float]]) -> tuple[list[float], list[float | None]]:
    """Recordings that became final, and the mean delivery latency (ms), in each minute."""
    throughput, latency = [], []
    for bucket in buckets:
        rows = list(bucket.items())
        throughput.append(total(rows, "relay_recordings_total"))
        count = total(rows, "relay_webhook_delivery_seconds_count")
        spent = total(rows, "relay_webhook_delivery_seconds_sum")
        latency.append(spent * 1000 / count if count else None)
    return throughput, latency


def chart(values: list[float | None], title: str, unit: str) -> Markup:
    """A small bar chart of `values` (oldest first), as inline SVG with a text alternative."""
    width, height, pad = 600, 120, 18
    known = [v for v in values if v is not None]
    top = max(known, default=0.0) or 1.0
    step = (width - 2) / max(len(values), 1)
    bars = []
    for index, value in enumerate(values):
        if not value:
            continue
        tall = (height - pad - 4) * value / top
        x, y = 1 + index * step, height - pad - tall
        label = f"{len(values) - index - 1} min ago: {value:.3g} {unit}"
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(step - 1, 1):.1f}" height="{tall:.1f}">'
            f"<title>{escape(label)}</title></rect>"
        )
    summary = f"{title}: peak {top:.3g} {unit}" if known else f"{title}: nothing yet"
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(summary)}"><title>{escape(summary)}</title>'
        f'<line x1="0" y1="{height - pad}" x2="{width}" y2="{height - pad}" class="axis"/>'
        f"{''.join(bars)}"
        f'<text x="2" y="{height - 4}">60 min ago</text>'
        f'<text x="{width - 2}" y="{height - 4}" text-anchor="end">now</text>'
        f'<text x="2" y="12">{escape(f"{top:.3g} {unit}")}</text></svg>'
    )


class Overview:
    """The dashboard's overview and `/metrics`' queue depths, read from Redis."""

    def __init__(
        self,
        metrics: MetricsStore,
        subscriptions: SubscriptionStore,
        deliveries: Deliveries,
        health: DeploymentHealth,
    ) -> None:
        self.metrics = metrics
        self.subscriptions = subscriptions
        self.deliveries = deliveries
        self.deployment = health

    async def depths(
        self, subscriptions: list[Subscription]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Every queue's depth, and each subscription's webhooks waiting for a slot."""
        due, deferred = await jobs.depth(self.metrics.redis)
        webhooks, waiting = await self.deliveries.depths([s.id for s in subscriptions])
        queues = {"pipeline_jobs_due": due, "pipeline_jobs_deferred": deferred, **webhooks}
        return queues, waiting

    async def health(
        self, subscriptions: list[Subscription], waiting: dict[str, int]
    ) -> list[Health]:
        found = []
        for subscription in subscriptions:
            log, _ = await self.deliveries.attempts(subscription.id, limit=HEALTH_ATTEMPTS)
            succeeded = sum(1 for a in log if a.succeeded)
            found.append(
                Health(
                    subscription=subscription,
                    attempts=len(log),
                    succeeded=succeeded,
                    failing_since=await self.deliveries.failing_since(subscription.id),
                    waiting=waiting.get(subscription.id, 0),
                )
            )
        return found

    async def page(self) -> dict[str, Any]:
        now = time.time()
        minutes = await self.metrics.minutes(60, now)
        hours = await self.metrics.hours(24, now)
        subscriptions, _ = await self.subscriptions.scan()
        queues, waiting = await self.depths(subscriptions)
        throughput, latency = per_minute(minutes)
        return {
            "hour": counts(minutes),
            "day": counts(hours),
            "throughput_chart": chart(list(throughput), "Recordings finished per minute", "/min"),
            "latency_chart": chart(latency, "Mean delivery latency per minute", "ms"),
            "depths": queues,
            "health": await self.health(subscriptions, waiting),
            "deployment": (await self.deployment.report()).as_dict(),
        }
