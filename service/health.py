"""Liveness and readiness probes for the PaaS router and for operators."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"})


class Readiness:
    """Ready means Redis answers: without it nothing can be accepted."""

    def __init__(self, redis: Redis, timeout: float = 1.0) -> None:
        self.redis = redis
        self.timeout = timeout

    async def probe(self, request: Request) -> JSONResponse:
        try:
            async with asyncio.timeout(self.timeout):
                await self.redis.ping()
        except (RedisError, OSError, TimeoutError):
            return JSONResponse({"status": "unavailable", "redis": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "redis": "ok"})
