"""Recordings whose callbacks never reached the relay are found in Plivo's List Recordings API
(the sweep) or a past window an operator names (the backfill), and go through the pipeline
once each, whatever else comes first."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from sandbox.app import callback_params
from service.domain.callbacks import Origin
from service.local.embedded_redis import free_port
from service.plivo.client import PlivoError, numbers
from service.storage import keys
from service.storage.reconciliation import Backfill
from tests.support.pipeline_env import Relay, running_relay, worker_env
from tests.support.receivers import Receiver
from tests.support.servers import serve
from tests.support.settings import ADMIN_TOKEN, AUTH_ID, SUB_AUTH_ID
from tests.support.waiting import eventually
from workers import reconciliation
from workers.reconciliation import Counts
from workers.worker import WorkerProcess

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BOUGHT = "POST /v1/Account/{auth_id}/Transcription/{recording_id}/"
LISTED = "GET /v1/Account/{auth_id}/Recording/"


async def lost_calls(relay: Relay, count: int, ago: float = 0, **extra: Any) -> list[str]:
    """Calls recorded (`ago` seconds ago) while the relay could not be reached: Plivo's
    callbacks failed, once. (A sweep leaves the last moments to callbacks still on their way.)"""
    down = f"http://127.0.0.1:{free_port()}/plivo/recording"
    ids = []
    for _ in range(count):
        body = {"relay_url": down, **extra}
        if ago:
            body["added_at"] = (datetime.now(UTC) - timedelta(seconds=ago)).isoformat()
        answer = await relay.http.post(f"{relay.sandbox_url}/sandbox/calls", json=body)
        assert answer.json()["callback_status"] in (0, None)
        ids.append(str(answer.json()["recording_id"]))
    return ids


async def taken_up(relay: Relay, ids: list[str], status: str = "transcribed") -> None:
    async def all_there() -> bool:
        for recording_id in ids:
            found = await relay.status(recording_id)
            if found.status_code != 200 or found.json()["status"] != status:
                return False
        return True

    await eventually(all_there, within=60, what=f"{len(ids)} recordings {status}")


@asynccontextmanager
async def idle_worker(relay: Relay) -> AsyncIterator[WorkerProcess]:
    """A worker's clients and reconciler, with no jobs or sweeps running."""
    process = WorkerProcess(relay.settings)
    try:
        yield process
    finally:
        await process.close_clients()


async def test_calls_recorded_while_the_relay_was_down_reach_every_subscriber_once(
    redis_url: str, redis: Redis
) -> None:
    interval = 2.0
    settings = {"reconcile_interval": str(interval), "delivery_allow_networks": "127.0.0.0/8"}
    receiver = Receiver()
    async with running_relay(redis_url, **settings) as relay, serve(receiver.app()) as url:
        await relay.subscribe(f"{url}/hook")

        async def watermarked() -> bool:  # the first sweep: from now on
            return bool(await redis.exists(keys.reconcile_watermark(SUB_AUTH_ID)))

        await eventually(watermarked, what="the first sweep")
        ids = await lost_calls(relay, 15) + await lost_calls(relay, 5, auth_id=SUB_AUTH_ID)
        await taken_up(relay, ids)  # the sweep found them: the callbacks never came

        async def all_delivered() -> bool:
            return len(receiver.got) >= 3 * len(ids)

        await eventually(all_delivered, within=2 * interval + 30, what="every webhook")
        webhook_ids = [r.headers["webhook-id"] for r in receiver.got]
        assert len(webhook_ids) == len(set(webhook_ids)) == 3 * len(ids)  # each once
        assert relay.sandbox_requests(BOUGHT) == len(ids)  # one transcription each
        status = (await relay.status(ids[0])).json()
        assert status["source"] == "reconciliation"
        assert {e["data"]["source"] for e in status["events"]} == {"reconciliation"}
        assert status["callback"]["auth_id"] == AUTH_ID
        sub = (await relay.status(ids[-1])).json()
        assert sub["callback"]["auth_id"] == SUB_AUTH_ID and sub["status"] == "transcribed"


async def test_a_callback_and_a_sweep_racing_for_a_recording_process_it_once(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, worker=False) as relay, idle_worker(relay) as worker:
        [recording_id] = await lost_calls(relay, 1, callback=False)
        account = relay.sandbox.state.accounts[AUTH_ID]
        recording = account.recordings[recording_id]
        callback = relay.sandbox.post_signed(
            account, f"{relay.url}/plivo/recording", callback_params(recording, "record_xml")
        )
        sweep = worker.reconciler.take_up(
            AUTH_ID, [numbers(recording)], Origin.RECONCILIATION, True
        )
        answer, counts = await asyncio.gather(callback, sweep)
        assert answer.status_code == 200
        relay.start_worker()
        status = await relay.settled(recording_id)
        assert status["status"] == "transcribed"
        # Whichever won, it was taken up once: one transcription, each event once.
        assert relay.sandbox_requests(BOUGHT) == 1
        assert [e["type"] for e in status["events"]] == [
            "recording.completed",
            "recording.transcribed",
            "recording.archived",
        ]
        # The other is logged as a duplicate.
        assert len(status["other_callbacks"]) == 1
        assert status["source"] == ("reconciliation" if counts.queued else "callback")


async def start_sweeping(worker: WorkerProcess, redis: Redis) -> None:
    """The first sweep (it sets the watermarks to now), and the lock let lapse."""
    assert await worker.reconciler.sweep() is not None
    await redis.delete(keys.RECONCILE_LOCK)


async def test_a_sweep_cut_short_is_repeated_and_skips_nothing(
    redis_url: str, redis: Redis
) -> None:
    settings = {"reconcile_interval": "0.2"}
    async with (
        running_relay(redis_url, worker=False, **settings) as relay,
        idle_worker(relay) as worker,
    ):
        await start_sweeping(worker, redis)
        mark = await redis.get(keys.reconcile_watermark(AUTH_ID))
        ids = await lost_calls(relay, 45, ago=5)  # three pages
        reconciler = worker.reconciler
        take_up = reconciler.take_up

        class Died(Exception):
            pass

        async def then_die(*args: Any) -> Counts:
            await take_up(*args)
            raise Died  # the worker dies right after its first page

        reconciler.take_up = then_die  # type: ignore[method-assign]
        with pytest.raises(Died):
            await reconciler.sweep()
        reconciler.take_up = take_up  # type: ignore[method-assign]
        assert await redis.get(keys.reconcile_watermark(AUTH_ID)) == mark  # not advanced
        missing = [i for i in ids if (await relay.status(i)).status_code == 404]
        assert missing  # the cut really left work undone

        await redis.delete(keys.RECONCILE_LOCK)  # the interval passed
        counts = await worker.reconciler.sweep()
        assert counts is not None and counts.queued == len(missing)
        assert all([(await relay.status(i)).status_code == 200 for i in ids])
        await redis.delete(keys.RECONCILE_LOCK)
        again = await worker.reconciler.sweep()
        assert again is not None and again.queued == 0  # each taken up once


async def test_a_sweep_in_a_plivo_storm_moves_nothing_and_the_next_takes_everything(
    redis_url: str, redis: Redis
) -> None:
    settings = {"reconcile_interval": "0.2", "plivo_retries": "0"}
    async with (
        running_relay(redis_url, worker=False, **settings) as relay,
        idle_worker(relay) as worker,
    ):
        await start_sweeping(worker, redis)
        mark = await redis.get(keys.reconcile_watermark(AUTH_ID))
        ids = await lost_calls(relay, 25, ago=5)
        for storm in ({"error_rate": 1.0}, {"burst_429": 1000}):
            for name, value in storm.items():
                setattr(relay.faults, name, value)
            with pytest.raises(PlivoError) as raised:
                await worker.reconciler.sweep()
            assert raised.value.transient
            assert await redis.get(keys.reconcile_watermark(AUTH_ID)) == mark
            relay.faults.error_rate, relay.faults.burst_429 = 0.0, 0
            await redis.delete(keys.RECONCILE_LOCK)
        counts = await worker.reconciler.sweep()
        assert counts is not None and counts.queued == len(ids)


async def test_two_workers_sweeping_at_once_take_each_recording_up_once(
    redis_url: str, redis: Redis
) -> None:
    settings = {"reconcile_interval": "30"}
    async with (
        running_relay(redis_url, worker=False, **settings) as relay,
        idle_worker(relay) as first,
        idle_worker(relay) as second,
    ):
        await start_sweeping(first, redis)
        ids = await lost_calls(relay, 30, ago=20)
        listed = relay.sandbox_requests(LISTED)
        one, other = await asyncio.gather(first.reconciler.sweep(), second.reconciler.sweep())
        assert (one is None) != (other is None)  # one sweep an interval, whoever runs
        swept = one or other
        assert swept is not None and swept.queued == len(ids) and swept.found == len(ids)
        # Two pages of the main account, one of the subaccount: one sweep's worth.
        assert relay.sandbox_requests(LISTED) - listed == 3
        assert await first.reconciler.sweep() is None  # the interval has not passed


async def test_a_backfill_takes_up_only_what_the_relay_never_saw_and_resumes(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No worker drains the queue until the walk is over: a backfill's wait for a short queue
    # (tests/test_backfills.py, bench/latency) would wait for ever here.
    monkeypatch.setattr(reconciliation, "QUEUE_MAX", 1_000)
    async with running_relay(redis_url, worker=False) as relay, idle_worker(relay) as worker:
        past = datetime.now(UTC) - timedelta(days=20)
        old = [past + timedelta(hours=n) for n in range(30)]
        unknown = [
            (await lost_calls(relay, 1, callback=False, added_at=moment.isoformat()))[0]
            for moment in old[:25]
        ]
        known = [await relay.call(added_at=moment.isoformat()) for moment in old[25:]]
        # 50 days: over Plivo's 30-day limit per query, walked in two steps.
        backfills = worker.reconciler.backfills
        backfill, _ = await backfills.begin((past - timedelta(days=30)).isoformat(), None, True)

        class Interrupted(Exception):
            pass

        def interrupt(progress: Backfill) -> None:
            if progress.found >= 20:
                raise Interrupted  # Ctrl-C after the first page

        with pytest.raises(Interrupted):
            await worker.reconciler.backfill(backfill, interrupt)
        saved = await worker.reconciler.backfills.get(backfill.id)
        assert saved is not None and saved.status == "running" and saved.found == 20
        done = await worker.reconciler.backfill(saved)
        assert done.status == "done"
        assert done.queued == 25  # each unknown one once, over both runs
        assert done.known >= 5 and done.found == done.known + done.queued
        relay.start_worker()
        await taken_up(relay, unknown)
        status = (await relay.status(unknown[0])).json()
        assert status["source"] == "backfill"
        assert relay.sandbox_requests(BOUGHT) == len(unknown) + len(known)
        for recording_id in known:
            assert (await relay.status(recording_id)).json()["source"] == "callback"


async def test_a_backfill_without_transcription_archives_and_announces_only(
    redis_url: str,
) -> None:
    async with running_relay(redis_url) as relay:
        moment = datetime.now(UTC) - timedelta(days=3)
        [recording_id] = await lost_calls(relay, 1, callback=False, added_at=moment.isoformat())
        started = await relay.http.post(
            f"{relay.url}/v1/backfills",
            json={"since": (moment - timedelta(hours=1)).isoformat(), "transcribe": False},
            headers=ADMIN,
        )
        assert started.status_code == 202, started.text
        backfill_id = started.json()["id"]

        async def done() -> bool:
            progress = await relay.http.get(
                f"{relay.url}/v1/backfills/{backfill_id}", headers=ADMIN
            )
            return bool(progress.json()["status"] == "done")

        await eventually(done, what="the backfill done")
        await taken_up(relay, [recording_id], status="not_transcribed")
        status = (await relay.status(recording_id)).json()
        assert [e["type"] for e in status["events"]] == [
            "recording.completed",
            "recording.archived",
        ]
        assert {e["data"]["transcribe"] for e in status["events"]} == {False}
        assert status["archived"] is True and status["audio"]
        assert relay.sandbox_requests(BOUGHT) == 0
        bad = await relay.http.post(
            f"{relay.url}/v1/backfills", json={"since": "last tuesday"}, headers=ADMIN
        )
        assert bad.status_code == 422 and bad.json()["error"].startswith("since:")
        later = await relay.http.post(
            f"{relay.url}/v1/backfills",
            json={"since": "2026-11-02", "until": "2026-11-01"},
            headers=ADMIN,
        )
        assert later.status_code == 422
        for since in ("1990-01-01", "0001-01-01T00:00:00+01:00"):
            old = await relay.http.post(
                f"{relay.url}/v1/backfills", json={"since": since}, headers=ADMIN
            )
            assert old.status_code == 422 and old.json()["error"].startswith("since:")
        unknown = await relay.http.get(f"{relay.url}/v1/backfills/bf_nope", headers=ADMIN)
        assert unknown.status_code == 404


async def test_the_backfill_command_prints_progress_and_a_summary(redis_url: str) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        moment = datetime.now(UTC) - timedelta(days=2)
        await lost_calls(relay, 3, callback=False, added_at=moment.isoformat())
        since = (moment - timedelta(hours=1)).isoformat()
        env = worker_env(relay)
        command = [sys.executable, "-m", "workers", "backfill", "--since", since]
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        assert "found 3, already known 0, queued 3" in out.decode()
        assert "queued 3" in err.decode()  # plain progress lines, not a terminal's bar
        again = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(again.communicate(), 60)
        assert "found 3, already known 3, queued 0" in out.decode()  # nothing twice
        bad = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers",
            "backfill",
            "--since",
            "soon",
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await bad.communicate()
        assert bad.returncode == 2 and b"since" in err
