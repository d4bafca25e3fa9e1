"""The tests' fixtures, loaded as a pytest plugin (`tests/conftest.py`): a real redis-server
for the session, one Redis database per test, and the relay's app served by a real uvicorn on a
free loopback port."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from redis.asyncio import Redis

from service.local.embedded_redis import EmbeddedRedis
from service.settings import Settings
from service.web.app import create_app
from tests.support.servers import serve
from tests.support.settings import make_settings

DATABASES = 2048
_next_db = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), databases=DATABASES) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """A Redis database of this test's own, empty at the start."""
    db = next(_next_db)
    assert db < DATABASES, "more tests than Redis databases: raise DATABASES"
    return f"redis://127.0.0.1:{redis_server.port}/{db}"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def settings(redis_url: str, redis: Redis) -> Settings:
    return make_settings(redis_url)


@pytest.fixture
async def relay(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the relay's web app, served for real on loopback."""
    async with (
        serve(create_app(settings)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        yield client
