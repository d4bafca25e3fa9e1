"""Liveness and readiness probes for the PaaS router and for operators."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.storage.archive import Archive


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"})


class Readiness:
    """Ready means Redis answers (without it nothing can be accepted) and the archive does
    (without it history cannot be read or kept)."""

    def __init__(self, redis: Redis, archive: Archive, timeout: float = 2.0) -> None:
        self.redis = redis
        self.archive = archive
        self.timeout = timeout

    async def probe(self, request: Request) -> JSONResponse:
        redis_ok = archive_ok = False
        try:
            async with asyncio.timeout(self.timeout):
                await self.redis.ping()
                redis_ok = True
        except (RedisError, OSError, TimeoutError):
            pass
        try:
            async with asyncio.timeout(self.timeout):
                archive_ok = await self.archive.reachable()
        except TimeoutError:
            pass
        report = {
            "status": "ok" if redis_ok and archive_ok else "unavailable",
            "redis": "ok" if redis_ok else "unreachable",
            "archive": "ok" if archive_ok else "unreachable",
        }
        return JSONResponse(report, status_code=200 if redis_ok and archive_ok else 503)
