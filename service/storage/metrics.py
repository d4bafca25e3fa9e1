"""The metrics' totals in Redis: what every web and worker process counted, summed.

Each process counts in memory (`service.metrics.Recorder`) and adds what it counted here every
few seconds, in one transaction: to the running totals (`rr:metrics`, served at `/metrics`) and
to the current minute's and hour's buckets (`rr:metrics:minute:{n}`, `rr:metrics:hour:{n}`,
kept a day and a week: the dashboard's charts). A field is one series, named
`[name, {label: value}]` as JSON; histogram buckets are kept in the totals only.
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from service.storage import keys

MINUTE_TTL = 25 * 3600
HOUR_TTL = 8 * 86_400

Series = tuple[str, tuple[tuple[str, str], ...]]  # name, sorted labels


def field(series: Series) -> str:
    name, labels = series
    return json.dumps([name, dict(labels)], separators=(",", ":"))


def parse_field(raw: str | bytes) -> Series:
    name, labels = json.loads(raw)
    return str(name), tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def _values(raw: dict[bytes, bytes]) -> dict[Series, float]:
    return {parse_field(k): float(v) for k, v in raw.items()}


class MetricsStore:
    """The deployment's metric totals in Redis, added to by every process."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def add(self, counted: dict[Series, float], now: float | None = None) -> None:
        """Add one process's counts to the totals and to this minute's and hour's buckets."""
        if not counted:
            return
        now = time.time() if now is None else now
        minute, hour = keys.metrics_minute(int(now // 60)), keys.metrics_hour(int(now // 3600))
        async with self.redis.pipeline(transaction=True) as pipe:
            for series, amount in counted.items():
                name = field(series)
                pipe.hincrbyfloat(keys.METRICS, name, amount)
                if "le" not in dict(series[1]):  # buckets: totals only
                    pipe.hincrbyfloat(minute, name, amount)
                    pipe.hincrbyfloat(hour, name, amount)
            pipe.expire(minute, MINUTE_TTL)
            pipe.expire(hour, HOUR_TTL)
            await pipe.execute()

    async def totals(self) -> dict[Series, float]:
        return _values(await self.redis.hgetall(keys.METRICS))  # type: ignore[misc]

    async def minutes(self, last: int, now: float | None = None) -> list[dict[Series, float]]:
        """The last `last` minutes' counts, oldest first (this minute last)."""
        current = int((time.time() if now is None else now) // 60)
        return await self._buckets([keys.metrics_minute(current - i) for i in range(last)][::-1])

    async def hours(self, last: int, now: float | None = None) -> list[dict[Series, float]]:
        current = int((time.time() if now is None else now) // 3600)
        return await self._buckets([keys.metrics_hour(current - i) for i in range(last)][::-1])

    async def _buckets(self, names: list[str]) -> list[dict[Series, float]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(name)
            rows: list[Any] = await pipe.execute()
        return [_values(row) for row in rows]
