"""The dashboard in a real browser: Playwright driving Debian's chromium, headless, against a
whole relay on loopback (Chromium's own background traffic is switched off).

`.ci/run` installs chromium when it is missing; elsewhere these tests are skipped with the
command that installs it. `DASHBOARD_SCREENSHOTS=docs` saves a screenshot of each page there.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.support.pipeline_env import Relay, running_relay, subscriber
from tests.support.receivers import Receiver
from tests.support.servers import serve
from tests.support.settings import ADMIN_TOKEN
from tests.support.waiting import eventually
from tests.test_delivery import FAST, received
from tests.test_endpoint_auth import Protected

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (one stat, before anything runs)
        message = "the browser tests need Debian's chromium: sudo apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        # Each launch has a fresh, temporary user-data directory of its own.
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        yield launched
        await launched.close()


async def shot(page: Page, name: str) -> None:
    folder = os.environ.get("DASHBOARD_SCREENSHOTS")
    if folder:
        await page.screenshot(path=str(Path(folder) / f"dashboard-{name}.png"), full_page=True)


async def logged_in_page(browser: Browser, relay: Relay, path: str) -> tuple[BrowserContext, Page]:
    """A new browser context logged in to the relay's dashboard, at `path` (under /dashboard)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"{relay.url}/dashboard/login")
    await page.fill("#token", ADMIN_TOKEN)
    await page.click("button[type=submit]")
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await page.goto(f"{relay.url}/dashboard{path}")
    return context, page


async def test_playwright_drives_the_system_chromium(browser: Browser) -> None:
    """If Playwright and Debian's chromium stop getting on, this says so first."""
    assert re.match(r"\d+\.", browser.version)
    page = await browser.new_page()
    await page.set_content("<p id=p>ok</p>")
    assert await page.text_content("#p") == "ok"


async def test_an_operator_finds_a_recording_replays_it_and_manages_subscriptions(
    redis_url: str, browser: Browser
) -> None:
    async with running_relay(redis_url, **FAST) as relay:
        receiver = Receiver()
        async with subscriber(relay, receiver, events=["recording.completed"]) as subscription:
            recording_id = await relay.call()
            assert (await relay.settled(recording_id))["status"] == "transcribed"
            await received(receiver, 1)
            webhook_id = receiver.got[0].headers["webhook-id"]

            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            await page.goto(f"{relay.url}/dashboard/")
            await expect(page).to_have_url(re.compile(r"/dashboard/login$"))
            await shot(page, "login")
            await page.fill("#token", ADMIN_TOKEN)
            await page.click("button[type=submit]")
            await expect(page.get_by_role("heading", name="Overview")).to_be_visible()

            async def counted() -> bool:  # the processes add their counts every few seconds
                await page.reload()
                figure = await page.text_content('[data-figure="1-transcribed"]')
                return figure is not None and figure.strip() == "1"

            await eventually(counted, within=20, what="the overview counting the recording")
            await expect(
                page.locator(f'tr[data-subscription="{subscription["id"]}"]')
            ).to_contain_text("100% of 1")
            await shot(page, "overview")

            await page.get_by_role("link", name="Recordings", exact=True).click()
            await page.select_option("select[name=status]", "transcribed")
            await page.get_by_role("button", name="Show").click()
            row = page.get_by_role("link", name=recording_id)
            await expect(row).to_be_visible()
            await shot(page, "recordings")
            await row.click()
            await expect(
                page.get_by_role("heading", name=f"Recording {recording_id}")
            ).to_be_visible()
            await expect(page.locator(".timeline")).to_contain_text("transcribed")
            await expect(page.locator("audio")).to_have_attribute("src", re.compile("signature="))
            await expect(page.locator("table.attempts")).to_contain_text(webhook_id)
            # The transcript beside the player: the turns, the card redacted, the WebVTT track;
            # selecting a turn plays the recording from there and marks it.
            turns = page.locator("#turns li")
            await expect(turns).to_have_count(4)
            await expect(page.locator(".transcript mark.redacted")).to_have_text("[card]")
            await expect(page.locator("#player track")).to_have_attribute(
                "src", re.compile(r"\.transcript\.vtt\?expires=")
            )
            second = turns.nth(1)
            await second.click()
            await expect(second).to_have_class(re.compile("current"))
            start = int(await second.get_attribute("data-start") or "-1")
            heard = await page.evaluate("document.getElementById('player').currentTime")
            assert start > 0 and heard == start / 1000
            await shot(page, "recording")

            await page.get_by_role("button", name="Replay its events").click()
            await expect(page.get_by_role("status")).to_contain_text("Replay: 1 queued")

            async def replayed() -> bool:
                return [r.headers["webhook-id"] for r in receiver.got] == [webhook_id] * 2

            await eventually(replayed, within=10, what="the replay with the same webhook-id")

            await page.get_by_role("link", name="Subscriptions", exact=True).click()
            other = Receiver()
            async with serve(other.app()) as other_url:
                await page.fill("#url", f"{other_url}/hook")
                await page.fill("#description", "billing")
                await page.get_by_role("button", name="Create").click()
                await expect(
                    page.get_by_role("heading", name="Subscription billing")
                ).to_be_visible()
                first = await page.text_content("#secret")
                assert first is not None and first.startswith("whsec_")
                await page.get_by_role("button", name="Rotate the secret").click()
                await expect(page.locator(".secret")).to_contain_text("previous secret")
                second = await page.text_content("#secret")
                assert second is not None and second.startswith("whsec_") and second != first
                await shot(page, "subscription")
                await page.reload()
                await expect(page.locator("#secret")).to_have_count(0)  # shown once
                await page.get_by_role("button", name="Disable").click()
                await expect(page.get_by_role("status")).to_contain_text("Saved")
                await expect(page.get_by_role("button", name="Enable")).to_be_visible()
            await context.close()


async def test_the_pages_work_with_javascript_off(redis_url: str, browser: Browser) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        context = await browser.new_context(java_script_enabled=False)
        page = await context.new_page()
        await page.goto(f"{relay.url}/dashboard/login")
        await page.fill("#token", ADMIN_TOKEN)
        await page.click("button[type=submit]")
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        await page.get_by_role("link", name="Subscriptions", exact=True).click()
        await expect(page.get_by_role("heading", name="New subscription")).to_be_visible()
        await page.get_by_role("button", name="Log out").click()
        await expect(page).to_have_url(re.compile(r"/dashboard/login$"))
        await context.close()


async def test_an_operator_holds_a_recording_then_erases_it_behind_a_confirmation(
    redis_url: str, browser: Browser
) -> None:
    async with running_relay(redis_url, **FAST) as relay:
        recording_id = await relay.call()
        assert (await relay.settled(recording_id))["status"] == "transcribed"
        context, page = await logged_in_page(browser, relay, f"/recordings/{recording_id}")

        await page.fill("#reason", "dispute 2026-88")
        await page.get_by_role("button", name="Place a hold").click()
        await expect(page.get_by_role("status")).to_contain_text("Legal hold placed")
        await expect(page.locator(".hold")).to_contain_text("dispute 2026-88")
        await expect(page.get_by_role("button", name="Erase")).to_have_count(0)  # held: no erase
        await page.get_by_role("link", name="Erasures", exact=True).click()
        await expect(page.locator("table.holds")).to_contain_text("dispute 2026-88")
        await page.get_by_role("link", name=recording_id).click()
        await page.get_by_role("button", name="Release the hold").click()
        await expect(page.get_by_role("status")).to_contain_text("Legal hold released")

        # The Erase button is behind a confirmation: the recording's id, typed again.
        await page.get_by_text("Erase this recording everywhere").click()
        await page.fill("#confirm", "not the id")
        await page.get_by_role("button", name="Erase").click()
        assert await page.evaluate("document.getElementById('confirm').validity.valid") is False
        await expect(page.locator("#confirm")).to_be_visible()  # the browser refused to send it
        await page.fill("#confirm", recording_id)
        await page.get_by_role("button", name="Erase").click()
        await expect(page.get_by_role("status")).to_contain_text("Erasure er_")
        await shot(page, "erasure")

        async def erased() -> bool:
            await page.reload()
            return await page.locator("#erasure h2").text_content() == "Erased"

        await eventually(erased, within=20, what="the page showing the recording erased")
        await expect(page.locator(".status")).to_contain_text("erased")
        await page.get_by_role("link", name="Erasures", exact=True).click()
        await expect(page.locator("table.erasures")).to_contain_text("done")
        await expect(page.locator("table.erasures")).to_contain_text("dashboard:")
        await context.close()


async def test_an_operator_filters_throttles_and_authenticates_a_subscription(
    redis_url: str, browser: Browser
) -> None:
    receiver = Protected(basic=base64.b64encode(b"relay:pa55word").decode())
    async with running_relay(redis_url, **FAST) as relay, serve(receiver.app()) as url:
        recording_id = await relay.call()
        assert (await relay.settled(recording_id))["status"] == "transcribed"
        made = await relay.subscribe(f"{url}/hook")
        context, page = await logged_in_page(browser, relay, f"/subscriptions/{made['id']}")

        # A filter that a bad JSON cannot replace, then one that takes only the completed events.
        await page.fill("#filter", "{not json")
        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page.locator("body")).to_contain_text("filter: not JSON")
        await page.goto(f"{relay.url}/dashboard/subscriptions/{made['id']}")
        await page.fill("#filter", '{"type": "recording.completed"}')
        await page.fill("#rate_limit", "5")
        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page.get_by_role("status")).to_contain_text("Saved")
        await expect(page.locator(".auth-summary")).to_contain_text("throttled to 5.0 a second")
        await page.get_by_role("link", name="Try it on the last 50 events").click()
        await expect(page.locator(".filter-preview")).to_contain_text(
            "1 of the last 3 events would have gone to it"
        )

        # Basic: the password is written once, never shown, and kept when left empty.
        await page.select_option("#auth_type", "basic")
        await page.fill("#username", "relay")
        await page.fill("#password", "pa55word")
        await page.get_by_role("button", name="Save the authentication").click()
        await expect(page.get_by_role("status")).to_contain_text("Saved")
        await expect(page.locator(".auth-summary")).to_contain_text("HTTP Basic as relay")
        assert "pa55word" not in await page.content()
        assert await page.input_value("#password") == ""
        await page.get_by_role("button", name="Save the authentication").click()  # kept
        await expect(page.get_by_role("status")).to_contain_text("Saved")
        await shot(page, "subscription-auth")
        await context.close()

        await relay.call()

        async def delivered() -> bool:  # only recording.completed, past Basic
            return len(receiver.taken) == 1

        await eventually(delivered, what="the filtered webhook past Basic")
        assert receiver.refused == 0
