"""The dashboard over HTTP: its login, its cookie, CSRF on every action, its pages' content
(the browser tests, tests/test_dashboard_browser.py, click through it as a person would)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.support.pipeline_env import Relay, running_relay
from tests.support.settings import ADMIN_TOKEN
from tests.test_delivery import FAST


@asynccontextmanager
async def logged_in(relay: Relay) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client with a dashboard session, and the session's CSRF token."""
    async with httpx.AsyncClient(base_url=relay.url, timeout=10) as client:
        answer = await client.post("/dashboard/login", data={"token": ADMIN_TOKEN})
        assert answer.status_code == 303 and answer.headers["location"].endswith("/dashboard/")
        page = await client.get("/dashboard/subscriptions")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None
        yield client, found.group(1)


async def test_the_dashboard_asks_for_the_admin_token_and_sets_a_strict_cookie(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        http = relay.http
        for page in ("/dashboard/", "/dashboard/recordings", "/dashboard/subscriptions"):
            answer = await http.get(f"{relay.url}{page}")
            assert answer.status_code == 303 and answer.headers["location"].endswith("/login")
        assert (await http.get(f"{relay.url}/dashboard/live")).status_code == 401
        action = await http.post(f"{relay.url}/dashboard/subscriptions", data={"url": "x"})
        assert action.status_code == 303 and action.headers["location"].endswith("/login")
        style = await http.get(f"{relay.url}/dashboard/static/dashboard.css")
        assert style.status_code == 200 and "text/css" in style.headers["content-type"]
        wrong = await http.post(f"{relay.url}/dashboard/login", data={"token": "not-it"})
        assert wrong.status_code == 401 and "not the admin token" in wrong.text
        assert "set-cookie" not in wrong.headers

        answer = await http.post(f"{relay.url}/dashboard/login", data={"token": ADMIN_TOKEN})
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
        assert ADMIN_TOKEN.lower() not in cookie
        async with logged_in(relay) as (client, csrf):
            overview = await client.get("/dashboard/")
            assert overview.status_code == 200 and "Queues now" in overview.text
            assert "<script" not in overview.text.split("<main>")[1].split("</main>")[0]
            logout = await client.post("/dashboard/logout", data={"csrf": csrf})
            assert logout.status_code == 303
            assert (await client.get("/dashboard/")).status_code == 303  # the session is gone


async def test_every_action_needs_the_sessions_csrf_token_and_changes_nothing_without(
    redis_url: str,
) -> None:
    async with (
        running_relay(redis_url, worker=False, **FAST) as relay,
        logged_in(relay) as (client, csrf),
    ):
        form = {"url": "http://127.0.0.1:9/hook", "events": "recording.completed"}
        for token in (None, "forged"):
            sent = {**form, **({"csrf": token} if token else {})}
            refused = await client.post("/dashboard/subscriptions", data=sent)
            assert refused.status_code == 403 and "CSRF" in refused.text
        listed = await relay.http.get(
            f"{relay.url}/v1/subscriptions",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert listed.json()["data"] == []

        created = await client.post("/dashboard/subscriptions", data={**form, "csrf": csrf})
        assert created.status_code == 303
        created = await client.get(created.headers["location"])
        secret = re.search(r'<code id="secret">(whsec_[^<]+)</code>', created.text)
        assert secret is not None  # shown once, on this page
        [subscription] = (
            await relay.http.get(
                f"{relay.url}/v1/subscriptions",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        ).json()["data"]
        assert subscription["secret"] == secret.group(1)
        page = await client.get(f"/dashboard/subscriptions/{subscription['id']}")
        assert secret.group(1) not in page.text  # and never again

        bad = await client.post("/dashboard/subscriptions", data={"url": "ftp://x", "csrf": csrf})
        assert bad.status_code == 422 and "url" in bad.text


async def test_pages_refuse_bad_filters_and_unknown_ids_with_a_page_that_says_so(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, worker=False) as relay, logged_in(relay) as (client, _):
        answers = {
            "/dashboard/recordings?status=lost": (422, "status: must be one of"),
            "/dashboard/recordings?source=fax": (422, "source: must be one of"),
            "/dashboard/recordings?cursor=-1": (422, "cursor"),
            "/dashboard/recordings/not-a-recording": (404, "unknown to the relay"),
            "/dashboard/subscriptions/sub_none": (404, "no such subscription"),
        }
        for path, (status, message) in answers.items():
            answer = await client.get(path)
            assert answer.status_code == status, path
            assert message in answer.text and "<html" in answer.text, path


async def test_a_transcribed_recordings_page_shows_its_turns_redacted_without_javascript(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, **FAST) as relay:
        recording_id = await relay.call()
        assert (await relay.settled(recording_id))["status"] == "transcribed"
        async with logged_in(relay) as (client, _):
            page = await client.get(f"/dashboard/recordings/{recording_id}")
    assert page.status_code == 200
    turns = re.findall(r'<li data-start="(\d+)" data-end="(\d+)"', page.text)
    assert len(turns) == 4 and turns[0][0] == "0"
    assert page.text.count('<span class="speaker">Speaker 1</span>') == 2
    assert '<mark class="redacted">[card]</mark>' in page.text
    assert "four one one" not in page.text
    assert re.search(r'<track kind="captions"[^>]*\.transcript\.vtt\?expires=', page.text)


async def test_a_subscriptions_filter_is_edited_on_its_page_and_tried_on_recent_events(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, **FAST) as relay:
        recording_id = await relay.call()
        assert (await relay.settled(recording_id))["status"] == "transcribed"
        subscription = await relay.subscribe("http://127.0.0.1:9/hook")
        page = f"/dashboard/subscriptions/{subscription['id']}"
        async with logged_in(relay) as (client, csrf):
            bad = await client.post(page, data={"csrf": csrf, "filter": "{not json"})
            assert bad.status_code == 422 and "filter: not JSON" in bad.text
            wrong = await client.post(page, data={"csrf": csrf, "filter": '{"a": {"$x": 1}}'})
            assert wrong.status_code == 422 and "a.$x" in wrong.text
            spec = '{"type": {"$in": ["recording.completed", "recording.archived"]}}'
            saved = await client.post(page, data={"csrf": csrf, "filter": spec})
            assert saved.status_code == 303
            shown = await client.get(page, params={"preview": "1"})
        assert "2 of the last 3 events would have gone to it" in shown.text
        assert re.search(r"recording\.transcribed</code>.*?<td>no</td>", shown.text, re.S)
        stored = await relay.http.get(
            f"{relay.url}/v1/subscriptions/{subscription['id']}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert stored.json()["filter"] == {
            "type": {"$in": ["recording.completed", "recording.archived"]}
        }


async def test_erasing_from_the_dashboard_needs_csrf_and_the_id_typed_again(
    redis_url: str,
) -> None:
    async with (
        running_relay(redis_url, worker=False, **FAST) as relay,
        logged_in(relay) as (client, csrf),
    ):
        recording_id = await relay.call()
        erase = f"/dashboard/recordings/{recording_id}/erase"
        forged = await client.post(erase, data={"confirm": recording_id, "csrf": "forged"})
        assert forged.status_code == 403
        unconfirmed = await client.post(erase, data={"confirm": "yes", "csrf": csrf})
        assert unconfirmed.status_code == 422 and "confirm" in unconfirmed.text
        blank = await client.post(
            f"/dashboard/recordings/{recording_id}/hold", data={"reason": " ", "csrf": csrf}
        )
        assert blank.status_code == 422 and "reason" in blank.text
        assert (await relay.status(recording_id)).json()["status"] == "queued"  # untouched
        erased = await client.post(erase, data={"confirm": recording_id, "csrf": csrf})
        assert erased.status_code == 303
        assert (await relay.status(recording_id)).json()["status"] == "erased"
