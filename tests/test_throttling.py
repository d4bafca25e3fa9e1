"""Throttling: a subscription's `rate_limit` holds, evenly spaced, while the others run at full
speed; what waits is neither failed nor dropped, arrives in order, and the overview shows it."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest

from tests.support.pipeline_env import running_relay, subscriber
from tests.support.receivers import Receiver
from tests.support.settings import ADMIN_TOKEN
from tests.support.waiting import eventually
from tests.test_dashboard import logged_in
from tests.test_delivery import FAST

pytestmark = pytest.mark.slow  # it waits on the relay's pace: seconds of it
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
RATE = 8.0


class Timed(Receiver):
    """A receiver that notes when each webhook came."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def app(self) -> Any:
        inner = super().app()

        async def noted(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                self.times.append(time.monotonic())
            await inner(scope, receive, send)

        return noted


async def test_a_throttled_subscriber_gets_its_rate_evenly_and_the_others_full_speed(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, **FAST) as relay:
        ids = [await relay.call() for _ in range(8)]
        for recording_id in ids:
            assert (await relay.settled(recording_id))["status"] == "transcribed"
        slow, fast = Timed(), Timed()
        async with (
            subscriber(relay, slow, rate_limit=RATE) as throttled,
            subscriber(relay, fast) as free,
        ):
            assert throttled["rate_limit"] == RATE and free["rate_limit"] is None
            for recording_id in ids:  # 24 webhooks each, all queued at once
                replayed = await relay.http.post(
                    f"{relay.url}/v1/recordings/{recording_id}/replay", headers=AUTH
                )
                assert replayed.status_code == 202, replayed.text
            expected = 3 * len(ids)

            async def fast_done() -> bool:
                return len(fast.got) == expected

            await eventually(fast_done, within=20, what="the free subscriber's webhooks")
            assert len(slow.got) < expected / 2  # the other went at full speed meanwhile
            async with logged_in(relay) as (dashboard, _):  # the overview shows what waits
                live = (await dashboard.get("/dashboard/live")).text
            row = live.split(f'data-subscription="{throttled["id"]}"')[1].split("</tr>")[0]
            waiting = re.search(r"<td>(\d+) <span [^>]*data-throttled>throttled to 8.0/s", row)
            assert waiting is not None and int(waiting.group(1)) > 0, row

            async def slow_done() -> bool:
                return len(slow.got) == expected

            await eventually(slow_done, within=30, what="the throttled subscriber's webhooks")
        # Never a burst: no second holds more than the rate (and one more, for where a
        # second's edge falls between two sends).
        times = slow.times
        busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
        assert busiest <= RATE + 1, busiest
        achieved = (len(slow.times) - 1) / (slow.times[-1] - slow.times[0])
        assert achieved <= RATE * 1.05, achieved
        # Each recording's events in the order of its life, none failed or dropped.
        order: dict[str, list[str]] = {}
        for received in slow.got:
            body = json.loads(received.body)
            order.setdefault(body["data"]["recording_id"], []).append(body["type"])
        assert all(
            kinds == ["recording.completed", "recording.transcribed", "recording.archived"]
            for kinds in order.values()
        ), order
        assert all(r.status == 200 for r in slow.got)


async def test_the_rate_limit_is_validated_and_can_be_removed(redis_url: str) -> None:
    async with (
        running_relay(redis_url, worker=False, **FAST) as relay,
        httpx.AsyncClient(base_url=relay.url, headers=AUTH) as api,
    ):
        for bad in (0, -1, 1001, "fast"):
            refused = await api.post(
                "/v1/subscriptions", json={"url": "http://127.0.0.1:9/h", "rate_limit": bad}
            )
            assert refused.status_code == 422, bad
            assert "rate_limit" in refused.json()["error"]
        made = await api.post(
            "/v1/subscriptions", json={"url": "http://127.0.0.1:9/h", "rate_limit": 2.5}
        )
        assert made.json()["rate_limit"] == 2.5
        sid = made.json()["id"]
        removed = await api.patch(f"/v1/subscriptions/{sid}", json={"rate_limit": 0})
        assert removed.status_code == 200 and removed.json()["rate_limit"] is None
