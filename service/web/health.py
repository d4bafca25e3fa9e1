"""Health: the probes a PaaS router asks, and the deployment's health as an operator reads it.

- `GET /healthz`: the process is up and serving.
- `GET /readyz`: this web process can do its job: Redis answers and takes writes (a full Redis
  refuses them), its eviction policy keeps what it is given, and the archive answers.
- `GET /v1/health` (admin token; also on the dashboard's overview and in `/metrics`): the whole
  deployment (`service.operations.health`).
"""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.operations.admin_auth import AdminAuth
from service.operations.health import DeploymentHealth
from service.storage import server
from service.storage.archive import Archive
from service.web.api.operation import documented

POLICY_LOOK = 30.0  # seconds /readyz trusts its last reading of the eviction policy


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"})


class Readiness:
    """Ready means Redis answers and takes writes (without it nothing can be accepted), keeps
    what it is given (`noeviction`), and the archive answers (without it history can be
    neither kept nor read). Each part says why when it is not."""

    def __init__(self, redis: Redis, archive: Archive, timeout: float = 2.0) -> None:
        self.redis = redis
        self.archive = archive
        self.timeout = timeout
        self._policy: tuple[float, str | None] | None = None  # (read at, problem)

    async def probe(self, request: Request) -> JSONResponse:
        redis = await self._redis()
        archive_ok = False
        try:
            async with asyncio.timeout(self.timeout):
                archive_ok = await self.archive.reachable()
        except TimeoutError:
            pass
        ready = redis == "ok" and archive_ok
        report = {
            "status": "ok" if ready else "unavailable",
            "redis": redis,
            "archive": "ok" if archive_ok else "unreachable",
        }
        return JSONResponse(report, status_code=200 if ready else 503)

    async def _redis(self) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                await self.redis.ping()
        except (RedisError, OSError, TimeoutError) as error:
            return f"unreachable: {type(error).__name__}: {str(error)[:200]}"
        try:
            async with asyncio.timeout(self.timeout):
                if not await server.writable(self.redis):
                    return "refuses writes (out of memory: maxmemory reached)"
                problem = await self._policy_problem()
        except TimeoutError:
            return "unreachable: no answer in time"
        return "ok" if problem is None else problem

    async def _policy_problem(self) -> str | None:
        now = time.monotonic()
        if self._policy is None or now - self._policy[0] > POLICY_LOOK:
            try:
                self._policy = (now, await server.policy_problem(self.redis))
            except (RedisError, OSError):
                return None  # asked again at the next probe
        return self._policy[1]


class Heartbeat(BaseModel):
    """A worker's last heartbeat."""

    worker: str = Field(description="the PaaS's name for the process (DYNO, ...) and its pid")
    last_heartbeat: float = Field(description="epoch seconds")
    seconds_ago: float
    alive: bool = Field(description="it beat within the last 30 s")


class Workers(BaseModel):
    """The workers, by their heartbeats."""

    alive: int
    heartbeats: list[Heartbeat] = Field(description="the last day's workers, newest first")


class Queues(BaseModel):
    """How long the oldest due work has waited."""

    oldest_due_job_seconds: float | None = Field(description="null: no job waits to start")
    oldest_due_webhook_seconds: float | None = Field(description="null: no webhook waits")


class RedisFigures(BaseModel):
    """Redis's memory and connections."""

    used_memory: int
    maxmemory: int = Field(description="0: no limit")
    maxmemory_policy: str = Field(description="anything but noeviction loses work")
    connected_clients: int
    maxclients: int | None
    rejected_connections: int = Field(description="since Redis started")
    evicted_keys: int = Field(description="since Redis started")


class HealthReport(BaseModel):
    """The deployment's health (`service.operations.health.HealthReport`)."""

    workers: Workers
    queues: Queues
    redis: RedisFigures
    warnings: list[str] = Field(description="what to act on, in sentences; empty when all is well")


class HealthAPI:
    """`GET /v1/health`, behind the admin token."""

    def __init__(self, health: DeploymentHealth, auth: AdminAuth) -> None:
        self.health = health
        self.auth = auth

    @documented(
        "getHealth",
        {200: ("the health report", HealthReport)},
        summary="The deployment's health: workers, queues, Redis, warnings",
    )
    async def get(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        report = HealthReport.model_validate((await self.health.report()).as_dict())
        return JSONResponse(report.model_dump(mode="json"))
