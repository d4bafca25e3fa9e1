"""Backfills asked for through the API take turns (`BACKFILL_CONCURRENCY`), can be cancelled
from the API and the dashboard, and go on when their job dies: none stays `running` for ever."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from service.storage import jobs
from tests.support.pipeline_env import Relay, running_relay
from tests.support.settings import ADMIN_TOKEN
from tests.support.waiting import eventually
from tests.test_dashboard import logged_in
from tests.test_reconciliation import lost_calls, taken_up

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def lost_on(relay: Relay, day: datetime, count: int) -> list[str]:
    """`count` recordings of `day` whose callbacks never reached the relay."""
    return [
        (
            await lost_calls(
                relay, 1, callback=False, added_at=(day + timedelta(minutes=n)).isoformat()
            )
        )[0]
        for n in range(count)
    ]


async def ask(relay: Relay, day: datetime) -> dict[str, Any]:
    """A backfill of `day` (an hour either side)."""
    since, until = day - timedelta(hours=1), day + timedelta(hours=1)
    answer = await relay.http.post(
        f"{relay.url}/v1/backfills",
        json={"since": since.isoformat(), "until": until.isoformat()},
        headers=ADMIN,
    )
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


async def backfill(relay: Relay, backfill_id: str) -> dict[str, Any]:
    answer = await relay.http.get(f"{relay.url}/v1/backfills/{backfill_id}", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def unknown(relay: Relay, ids: list[str]) -> bool:
    return [(await relay.status(i)).status_code for i in ids] == [404] * len(ids)


async def test_backfills_run_one_at_a_time_in_order_and_a_cancelled_one_never_runs(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        now = datetime.now(UTC)
        days = [now - timedelta(days=d) for d in (5, 4, 3)]
        lost = [await lost_on(relay, day, 3) for day in days]
        asked = [await ask(relay, day) for day in days]
        assert [b["status"] for b in asked] == ["queued"] * 3
        again = await ask(relay, days[0])  # the same window: the same backfill, as it is
        assert again["id"] == asked[0]["id"]
        listed = await relay.http.get(f"{relay.url}/v1/backfills", headers=ADMIN)
        assert [b["id"] for b in listed.json()["data"]] == [b["id"] for b in asked[::-1]]

        cancelled = await relay.http.delete(
            f"{relay.url}/v1/backfills/{asked[1]['id']}", headers=ADMIN
        )
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        missing = await relay.http.delete(f"{relay.url}/v1/backfills/bf_nope", headers=ADMIN)
        assert missing.status_code == 404 and "bf_nope" in missing.json()["error"]

        relay.start_worker()
        seen_running: list[int] = []

        async def all_ended() -> bool:
            now = [await backfill(relay, b["id"]) for b in asked]
            seen_running.append(sum(b["status"] == "running" for b in now))
            return all(b["status"] in ("done", "cancelled") for b in now)

        await eventually(all_ended, within=60, what="the backfills ended")
        assert max(seen_running) <= 1  # BACKFILL_CONCURRENCY=1
        assert [(await backfill(relay, b["id"]))["status"] for b in asked] == [
            "done",
            "cancelled",
            "done",
        ]
        await taken_up(relay, lost[0] + lost[2])
        assert await unknown(relay, lost[1])
        # An ended backfill is answered as it is.
        again = await relay.http.delete(f"{relay.url}/v1/backfills/{asked[0]['id']}", headers=ADMIN)
        assert again.status_code == 200 and again.json()["status"] == "done"


@pytest.mark.slow  # waits seconds on the relay's own timers
async def test_a_running_backfill_cancelled_stops_after_the_page_at_hand(
    redis_url: str, redis: Redis
) -> None:
    async with running_relay(redis_url) as relay:
        day = datetime.now(UTC) - timedelta(days=2)
        lost = await lost_on(relay, day, 100)  # five pages of Plivo's list
        relay.faults.latency = 0.3  # each page, and each recording's requests, take a while
        started = await ask(relay, day)

        async def walking() -> bool:
            now = await backfill(relay, started["id"])
            return bool(now["status"] == "running" and now["found"] >= 20)

        await eventually(walking, within=30, what="the backfill's first page")
        cancelled = await relay.http.delete(
            f"{relay.url}/v1/backfills/{started['id']}", headers=ADMIN
        )
        assert cancelled.json()["status"] == "cancelled"
        job = jobs.job_id(jobs.RUN_BACKFILL, started["id"])

        async def job_over() -> bool:
            return not await redis.exists(jobs.job_key(job), in_progress_key_prefix + job)

        await eventually(job_over, within=30, what="the backfill's job over")
        relay.faults.latency = 0
        after = await backfill(relay, started["id"])
        assert after["status"] == "cancelled"
        assert after["found"] < 100
        taken = [i for i in lost if (await relay.status(i)).status_code == 200]
        assert len(taken) < 100  # what it had not reached is left alone


async def test_a_backfill_whose_job_died_goes_on_and_ends(redis_url: str, redis: Redis) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        day = datetime.now(UTC) - timedelta(days=2)
        lost = await lost_on(relay, day, 3)
        started = await ask(relay, day)
        # Its job ends without it (arq drops a job that outlived WORKER_JOB_TIMEOUT, or that
        # expired unstarted): nothing is queued for it any more.
        job = jobs.job_id(jobs.RUN_BACKFILL, started["id"])
        assert await redis.zrem(jobs.QUEUE, job) == 1
        await redis.delete(jobs.job_key(job))
        relay.start_worker()

        async def done() -> bool:
            return (await backfill(relay, started["id"]))["status"] == "done"

        await eventually(done, within=60, what="the backfill done")
        await taken_up(relay, lost)


async def test_the_dashboard_starts_shows_and_cancels_a_backfill(redis_url: str) -> None:
    async with running_relay(redis_url, worker=False) as relay, logged_in(relay) as (client, csrf):
        day = (datetime.now(UTC) - timedelta(days=3)).date()
        bad = await client.post(
            "/dashboard/backfills", data={"csrf": csrf, "since": "last tuesday"}
        )
        assert bad.status_code == 422 and "since:" in bad.text
        forged = await client.post("/dashboard/backfills", data={"since": day.isoformat()})
        assert forged.status_code == 403
        started = await client.post(
            "/dashboard/backfills",
            data={"csrf": csrf, "since": day.isoformat(), "transcribe": "true"},
        )
        assert started.status_code == 303
        page = await client.get(started.headers["location"])
        found = re.search(r"<code>(bf_\w+)</code>", page.text)
        assert found is not None and ": queued." in page.text
        backfill_id = found.group(1)
        assert f"/backfills/{backfill_id}/cancel" in page.text

        cancelled = await client.post(
            f"/dashboard/backfills/{backfill_id}/cancel", data={"csrf": csrf}
        )
        assert cancelled.status_code == 303
        page = await client.get(cancelled.headers["location"])
        assert "cancelled" in page.text and f"/backfills/{backfill_id}/cancel" not in page.text
        assert (await backfill(relay, backfill_id))["status"] == "cancelled"
