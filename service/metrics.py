"""Metrics: what the relay counts (`service.web.metrics` serves them in Prometheus's format).

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
from collections.abc import Callable, Iterable

from redis.exceptions import RedisError

from service.storage.metrics import MetricsStore, Series

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


def total(totals: Iterable[tuple[Series, float]], name: str, **labels: str) -> float:
    """The sum of `name`'s series whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, given), v in totals if n == name and wanted <= set(given))
