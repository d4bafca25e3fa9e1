"""Connections to Redis: every client of a process drawn from one budget.

A PaaS's Redis plan caps the connections of the whole deployment (`maxclients`: 20 on the
smallest plans, 40 on the next). Each process opens at most `REDIS_MAX_CONNECTIONS`:

- one shared pool (`shared`), blocking: a task that finds every connection busy waits for one
  to come back instead of failing, so a burst of work is slowed by a small plan, never broken
  by it. The web process's ingest script keeps one of the pool's connections for itself
  (`service.storage.script`);
- in a worker, one more for the wake-up listener (`listener`), which waits on a quiet channel
  for ever and so has no read timeout; the shared pool gets the rest.

A connection Redis refuses (`max number of clients reached`, a reset) is a `ConnectionError`
like any lost connection: the callers ride it out with backoff (the web process answers 503,
a worker waits and carries on), and the process recovers by itself once connections free up.

TLS: a `rediss://` URL is verified against the system's certificate authorities unless
`REDIS_TLS_VERIFY=false` or the URL says `?ssl_cert_reqs=none` (the self-signed certificates of
Heroku's plans). The URL's own TLS parameters win over `REDIS_TLS_VERIFY`.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from service.settings import Settings

LISTENER = 1  # connections a worker keeps for the wake-up listener, outside the shared pool


def _options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"socket_connect_timeout": 2, "socket_keepalive": True}
    if settings.redis_url.startswith("rediss://") and not settings.redis_tls_verify:
        options["ssl_cert_reqs"] = "none"
    return options


def shared(settings: Settings, size: int, socket_timeout: float, **extra: Any) -> Redis:
    """A client over a blocking pool of at most `size` connections (waiting for one never
    times out: a task waits as long as the work ahead of it takes)."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=size,
        timeout=None,
        socket_timeout=socket_timeout,
        **_options(settings),
        **extra,
    )
    return Redis.from_pool(pool)


def web(settings: Settings, **extra: Any) -> Redis:
    """The web process's client: the whole budget, short timeouts (Plivo must hear back fast)."""
    return shared(settings, settings.redis_max_connections, socket_timeout=2, **extra)


def worker_pool(settings: Settings) -> BlockingConnectionPool:
    """A worker's shared pool: the budget less the listener's connection."""
    pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections - LISTENER,
        timeout=None,
        socket_timeout=10,
        **_options(settings),
    )
    return pool


def listener(settings: Settings) -> Redis:
    """A worker's wake-up listener: one connection, no read timeout (keep-alive finds a dead
    peer)."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=LISTENER, timeout=None, **_options(settings)
    )
    return Redis.from_pool(pool)
