"""Shared fixtures: a real redis-server for the session, one Redis database per test, and the
relay's app served by a real uvicorn on a free loopback port."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from redis.asyncio import Redis

from service.app import create_app
from service.embedded_redis import EmbeddedRedis
from service.settings import Settings
from tests.servers import serve

DATABASES = 2048
_next_db = itertools.count(1)

AUTH_ID = "MATESTACCOUNT0000001"
AUTH_TOKEN = "test-main-auth-token-0123456789"
SUB_AUTH_ID = "SATESTSUBACCOUNT0001"
SUB_AUTH_TOKEN = "test-subaccount-token-abcdef"
ADMIN_TOKEN = "test-admin-token"
PUBLIC_BASE_URL = "https://relay.example.com"


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


def make_settings(redis_url: str, **overrides: object) -> Settings:
    """Settings for a test: its Redis database, and an archive of its own (a new directory)."""
    values: dict[str, object] = {
        "redis_url": redis_url,
        "archive_url": f"file://{tempfile.mkdtemp(prefix='relay-archive-')}",
        "plivo_auth_id": AUTH_ID,
        "plivo_auth_token": AUTH_TOKEN,
        "plivo_subaccounts": f"{SUB_AUTH_ID}:{SUB_AUTH_TOKEN}",
        "public_base_url": PUBLIC_BASE_URL,
        "admin_token": ADMIN_TOKEN,
    }
    values.update(overrides)
    return Settings.model_validate(values)


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
