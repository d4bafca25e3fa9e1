"""The deployment's health as an operator reads it (`GET /v1/health`, the dashboard's overview,
`/metrics`): the workers' heartbeats, how long the oldest due work has waited, Redis's memory
and connections, and warnings in plain sentences."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from service.storage import jobs, server
from service.storage.deliveries import Deliveries
from service.storage.heartbeats import ALIVE, Heartbeats

LAGGING = 60.0  # seconds due work may wait before the report warns
NEAR_LIMIT = 0.8  # the share of Redis's memory or connections past which the report warns


@dataclass(frozen=True)
class HealthReport:
    """The deployment's health, as `GET /v1/health` answers it."""

    workers: dict[str, Any]
    queues: dict[str, float | None]
    redis: dict[str, Any]
    warnings: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "queues": self.queues,
            "redis": self.redis,
            "warnings": self.warnings,
        }


class DeploymentHealth:
    """Builds the `HealthReport` from Redis (one process's view serves the whole deployment)."""

    def __init__(self, redis: Redis, deliveries: Deliveries) -> None:
        self.redis = redis
        self.heartbeats = Heartbeats(redis)
        self.deliveries = deliveries

    async def report(self) -> HealthReport:
        now = time.time()
        beats = await self.heartbeats.recent(now)
        oldest_job = await jobs.oldest_due(self.redis, now)
        oldest_webhook = await self.deliveries.oldest_due(now)
        facts = await server.facts(self.redis)
        alive = [b for b in beats if b.alive(now)]
        workers = {
            "alive": len(alive),
            "heartbeats": [
                {
                    "worker": b.worker,
                    "last_heartbeat": round(b.at, 3),
                    "seconds_ago": round(now - b.at, 1),
                    "alive": b.alive(now),
                }
                for b in beats
            ],
        }
        queues = {
            "oldest_due_job_seconds": oldest_job,
            "oldest_due_webhook_seconds": oldest_webhook,
        }
        return HealthReport(workers, queues, facts.as_dict(), warnings(len(alive), queues, facts))


def warnings(alive: int, queues: dict[str, float | None], facts: server.Facts) -> list[str]:
    """What an operator should act on, in plain sentences; empty when all is well."""
    found = []
    if alive == 0:
        found.append(
            f"No worker has sent a heartbeat in the last {ALIVE:g} s: recordings and webhooks "
            "wait until one runs."
        )
    for name, what in (
        ("oldest_due_job_seconds", "pipeline job"),
        ("oldest_due_webhook_seconds", "webhook"),
    ):
        waited = queues[name]
        if waited is not None and waited > LAGGING:
            found.append(
                f"The oldest due {what} has waited {waited:.0f} s: the workers are not keeping "
                "up (add workers, or look at their logs)."
            )
    problem = server.eviction_problem(facts.maxmemory_policy)
    if problem is not None:
        found.append(problem + ".")
    if facts.maxmemory and facts.used_memory > NEAR_LIMIT * facts.maxmemory:
        share = facts.used_memory / facts.maxmemory
        found.append(
            f"Redis uses {share:.0%} of its maxmemory ({facts.used_memory:,} of "
            f"{facts.maxmemory:,} bytes): once full it refuses writes and callbacks get 503."
        )
    if facts.maxclients and facts.connected_clients > NEAR_LIMIT * facts.maxclients:
        found.append(
            f"Redis has {facts.connected_clients} of its {facts.maxclients} connections in use: "
            "lower REDIS_MAX_CONNECTIONS or run fewer processes (see the README's table)."
        )
    return found
