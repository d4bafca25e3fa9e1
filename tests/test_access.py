"""Who may use the management API and the dashboard, and for how long: several admin tokens at
once, a failed token throttled and logged, dashboard sessions that end when they should (their
cookie copied or not), and media links that outlive a token's rotation."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.pipeline_env import Relay, running_relay
from tests.support.settings import ADMIN_TOKEN

OLD, NEW = "old-admin-token-0123456789", "new-admin-token-9876543210"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def session(relay: Relay, token: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A dashboard session opened with `token`, and its CSRF token."""
    async with httpx.AsyncClient(base_url=relay.url, timeout=10) as client:
        answer = await client.post("/dashboard/login", data={"token": token})
        assert answer.status_code == 303, answer.text
        page = await client.get("/dashboard/subscriptions")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None
        yield client, found.group(1)


async def test_a_token_can_be_retired_while_another_is_in_use(redis_url: str) -> None:
    async with running_relay(redis_url, worker=False, admin_tokens=f"{OLD},{NEW}") as relay:
        url = f"{relay.url}/v1/subscriptions"
        for token in (OLD, NEW):
            assert (await relay.http.get(url, headers=bearer(token))).status_code == 200
        async with session(relay, OLD) as (client, _):
            cookie = client.cookies["relay_dashboard"]
    # OLD is retired: the next deployment has NEW only.
    async with running_relay(redis_url, worker=False, admin_tokens=NEW) as relay:
        url = f"{relay.url}/v1/subscriptions"
        assert (await relay.http.get(url, headers=bearer(OLD))).status_code == 401
        assert (await relay.http.get(url, headers=bearer(NEW))).status_code == 200
        async with httpx.AsyncClient(base_url=relay.url, cookies={"relay_dashboard": cookie}) as c:
            page = await c.get("/dashboard/")
            assert page.status_code == 303  # the session OLD opened ended with it


async def test_a_cookie_copied_before_logout_opens_nothing_after(redis_url: str) -> None:
    loopback = "127.0.0.0/8"
    async with running_relay(redis_url, worker=False, delivery_allow_networks=loopback) as relay:
        async with session(relay, relay.settings.admin_secrets[0].get_secret_value()) as (
            client,
            csrf,
        ):
            stolen = client.cookies["relay_dashboard"]
            created = await client.post(
                "/dashboard/subscriptions",
                data={"csrf": csrf, "url": "http://127.0.0.1:9/hook"},
                follow_redirects=True,
            )
            assert created.status_code == 200 and "Created." in created.text, created.text
            # No answer, a confirmation included, extends the session: its cookie is set once.
            assert all("set-cookie" not in r.headers for r in [*created.history, created])
            await client.post("/dashboard/logout", data={"csrf": csrf})
        async with httpx.AsyncClient(base_url=relay.url, cookies={"relay_dashboard": stolen}) as c:
            assert (await c.get("/dashboard/")).status_code == 303


async def test_a_session_ends_after_its_hours_whatever_it_did(redis_url: str, redis: Redis) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        token = relay.settings.admin_secrets[0].get_secret_value()
        async with session(relay, token) as (client, _):
            assert (await client.get("/dashboard/")).status_code == 200
            [key] = await redis.keys("rr:session:*")
            assert 0 < await redis.ttl(key) <= 8 * 3600  # set at login, never extended
            await redis.delete(key)  # as Redis does 8 hours after the login
            assert (await client.get("/dashboard/")).status_code == 303


async def test_wrong_tokens_are_throttled_and_logged_without_the_guess(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with running_relay(redis_url, worker=False) as relay:
        token = relay.settings.admin_secrets[0].get_secret_value()
        guesses = [f"guess-number-{n}" for n in range(10)]
        for guess in guesses:
            wrong = await relay.http.post(f"{relay.url}/dashboard/login", data={"token": guess})
            assert wrong.status_code == 401
        # The eleventh try from this address, even with the right token, waits for the minute.
        refused = await relay.http.post(f"{relay.url}/dashboard/login", data={"token": token})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) <= 60
        api = await relay.http.get(f"{relay.url}/v1/subscriptions", headers=bearer(token))
        assert api.status_code == 429  # the bearer API shares the count
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged.count("dashboard login with a wrong token refused from 127.0.0.1") == 10
    assert not any(guess in logged for guess in guesses)


async def test_media_links_outlive_the_admin_tokens(redis_url: str, tmp_path: Path) -> None:
    archive = f"file://{tmp_path}/archive"
    tokens = {"admin_tokens": ADMIN_TOKEN}  # the one the test's own calls use, throughout
    async with running_relay(redis_url, admin_token=OLD, archive_url=archive, **tokens) as relay:
        recording_id = await relay.call()
        status = await relay.settled(recording_id)
        link = status["events"][0]["data"]["media"]["url"]
    async with running_relay(
        redis_url, worker=False, admin_token=NEW, archive_url=archive, **tokens
    ) as r:
        served = await r.http.get(link.replace(link.split("/media/")[0], r.url))
        assert served.status_code == 200


@pytest.mark.parametrize("text", ["a\x00b", "pay \u202eplh\u202c", "line\nbreak", "\x1b[31m"])
async def test_stored_text_refuses_control_and_reordering_characters(
    redis_url: str, text: str
) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        token = relay.settings.admin_secrets[0].get_secret_value()
        answer = await relay.http.post(
            f"{relay.url}/v1/subscriptions",
            json={"url": "https://example.com/h", "description": text},
            headers=bearer(token),
        )
        assert answer.status_code == 422
        assert "description" in answer.json()["error"] and "U+" in answer.json()["error"]
        listed = await relay.http.get(f"{relay.url}/v1/subscriptions", headers=bearer(token))
        assert listed.json()["data"] == []  # nothing was stored
