"""Crashes lose nothing: a worker killed mid-pipeline (kill -9), Redis killed and restarted from
its append-only file while webhooks wait to be delivered, or Redis dying right after a write
(it kept the write, its answer was lost)."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from service.local.embedded_redis import EmbeddedRedis
from service.storage import jobs
from service.storage.archive import Archive, day_of
from service.storage.recordings import RecordingStore
from tests.support.pipeline_env import (
    Relay,
    kill_at_random,
    relay_for_kills,
    running_relay,
    start_worker,
    worker_env,
)
from tests.support.receivers import Receiver
from tests.support.redis_crash import RedisCrash, redis_crash
from tests.support.servers import serve
from tests.support.settings import AUTH_ID, AUTH_TOKEN
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

BUY = "POST /v1/Account/{auth_id}/Transcription/{recording_id}/"


async def test_killed_worker_loses_nothing(redis_url: str, redis: Redis) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        env = worker_env(relay)
        relay.faults.latency = 0.5  # every Plivo request is slow: the worker dies mid-request
        ids = [await relay.call() for _ in range(3)]
        first = await start_worker(env)

        async def some_fetch_started() -> bool:
            return relay.sandbox.state.counters.requests > 0

        await eventually(some_fetch_started, within=20, what="the worker calling Plivo")
        first.send_signal(signal.SIGKILL)
        await first.wait()
        relay.faults.latency = 0
        second = await start_worker(env)
        try:
            archive = Archive(relay.settings.archive_url)
            for recording_id in ids:
                status = await relay.settled(recording_id, within=40)
                assert status["status"] == "transcribed", status
                kinds = [event["type"] for event in status["events"]]
                assert kinds == [
                    "recording.completed",
                    "recording.transcribed",
                    "recording.archived",
                ]
                # Whatever the kill interrupted, the re-run left the archive whole.
                assert status["archived"] is True
                prefix = f"recordings/{day_of(status['steps']['accepted_at'])}/{recording_id}"
                # Eight documents, the transcript's three forms, the audio and the final state.
                assert len(await archive.keys(prefix)) == 13
        finally:
            second.send_signal(signal.SIGTERM)
            await second.wait()
        assert relay.sandbox_requests(BUY) == len(ids)  # none bought twice


async def test_redis_crash_and_restart_from_its_aof_loses_no_webhook(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis", appendfsync="always") as server:
        admit = "127.0.0.0/8"
        async with running_relay(server.url, worker=False, delivery_allow_networks=admit) as relay:
            receiver = Receiver(answers=[503])
            async with serve(receiver.app()) as url:
                await relay.subscribe(f"{url}/hook")
                env = worker_env(
                    relay,
                    # A job waits for Redis for 4 s of it. A claim of a job or a webhook
                    # whose answer the crash lost waits for its lock (15 s) or hold (15 s).
                    WORKER_JOB_TIMEOUT="5",
                    DELIVERY_TIMEOUT="2",
                    LOG_LEVEL="info",  # each job's start and end, should this fail
                    DELIVERY_ALLOW_NETWORKS=admit,
                    DELIVERY_RETRY_SCHEDULE=",".join(["0"] + ["0.3"] * 20),
                )
                log = tmp_path / "worker.log"
                worker = await start_worker(env, log)
                try:
                    ids = [await relay.call() for _ in range(3)]

                    async def all_failing() -> bool:  # each recording's first webhook fails
                        return len({r.headers["webhook-id"] for r in receiver.got}) == len(ids)

                    await eventually(all_failing, what="a failed attempt for each recording")
                    server.kill()
                    server.start(port=server.port)
                    receiver.answers = [200]
                    ids.append(await relay.call())  # the web process is back by itself

                    async def everything_delivered() -> bool:
                        ok = {r.headers["webhook-id"] for r in receiver.got if r.status == 200}
                        return len(ok) == 3 * len(ids)

                    try:
                        await eventually(everything_delivered, within=30, what="every webhook")
                    except AssertionError:  # say where each recording got to
                        states = [(await relay.status(i)).json() for i in ids]
                        raise AssertionError([(s["status"], s["steps"]) for s in states]) from None
                    assert worker.returncode is None  # the same worker rode it out
                finally:
                    worker.send_signal(signal.SIGTERM)
                    await worker.wait()
                    print(log.read_text())


async def test_a_worker_killed_mid_webhook_leaves_it_to_another(redis_url: str) -> None:
    admit = "127.0.0.0/8"
    async with running_relay(redis_url, worker=False, delivery_allow_networks=admit) as relay:
        receiver = Receiver(hang=True)
        async with serve(receiver.app()) as url:
            await relay.subscribe(f"{url}/hook", events=["recording.completed"])
            # The lease of an attempt lapses DELIVERY_TIMEOUT + 10 s after it was claimed.
            env = worker_env(relay, DELIVERY_ALLOW_NETWORKS=admit, DELIVERY_TIMEOUT="1")
            first = await start_worker(env)
            recording_id = await relay.call()

            async def sending() -> bool:
                return len(receiver.got) == 1

            await eventually(sending, what="the first worker sending the webhook")
            first.send_signal(signal.SIGKILL)
            await first.wait()
            receiver.hang = False
            second = await start_worker(env)
            try:

                async def delivered() -> bool:
                    return any(r.status == 200 for r in receiver.got)

                await eventually(delivered, within=30, what="the webhook sent again")
            finally:
                second.send_signal(signal.SIGTERM)
                await second.wait()
            assert len({r.headers["webhook-id"] for r in receiver.got}) == 1

            async def settled() -> bool:
                status = (await relay.status(recording_id)).json()
                return [a["status_code"] for a in status["attempts"]] == [200]

            await eventually(settled, what="the attempt logged")


@asynccontextmanager
async def worker_behind_a_crash(
    redis_url: str, *markers: bytes, down_for: float, applied: bool = True, **overrides: object
) -> AsyncIterator[tuple[Relay, RedisCrash]]:
    """A relay whose worker reaches Redis through `tests.support.redis_crash`, set to crash
    after the first write that carries `markers` (`applied`: Redis kept it); its web process
    reaches Redis directly."""
    async with (
        running_relay(redis_url, worker=False, **overrides) as relay,
        redis_crash(redis_url) as (crash, through_it),
    ):
        crash.crash_after(*markers, down_for=down_for, applied=applied)
        relay.start_worker(relay.settings.model_copy(update={"redis_url": through_it}))
        yield relay, crash


async def test_a_transcription_mark_whose_answer_was_lost_is_bought_once(redis_url: str) -> None:
    # Redis keeps the mark that the transcription is being bought and dies before answering:
    # the worker cannot know it was kept, writes it again once Redis is back, then buys.
    mark = b"transcription_requesting"
    async with worker_behind_a_crash(redis_url, mark, down_for=0.5) as (relay, crash):
        recording_id = await relay.call()
        status = await relay.settled(recording_id)
        assert crash.crashes == 1
        assert status["status"] == "transcribed", status
        assert status["steps"]["transcription_requested_at"] is not None
        assert relay.sandbox_requests(BUY) == 1


async def test_a_job_that_lost_redis_runs_again_once_redis_is_back(redis_url: str) -> None:
    # arq's lock on the job lapses only WORKER_JOB_TIMEOUT + 10 s (here 130 s) after it
    # started: the job waits for Redis instead, and has arq run it again within seconds. Redis
    # kept the recording's details but not the event that follows: the re-run sends it.
    async with worker_behind_a_crash(redis_url, b"details_at", down_for=1.0) as (relay, crash):
        recording_id = await relay.call()
        status = await relay.settled(recording_id, within=30)
        assert crash.crashes == 1
        assert status["status"] == "transcribed", status
        kinds = [event["type"] for event in status["events"]]
        assert kinds == ["recording.completed", "recording.transcribed", "recording.archived"]
        assert relay.sandbox_requests(BUY) == 1


async def test_redis_lost_as_a_job_is_taken_is_ridden_out(redis_url: str) -> None:
    # Redis dies as a worker takes a job (the script that locks it never arrives): the worker
    # does not end, and takes the job once Redis is back. (Had Redis kept the lock and only its
    # answer been lost, the job would wait for the lock to lapse: WORKER_JOB_TIMEOUT + 10 s.)
    lock = b"arq:in-progress:"
    async with worker_behind_a_crash(redis_url, lock, down_for=0.5, applied=False) as (
        relay,
        crash,
    ):
        recording_id = await relay.call()
        status = await relay.settled(recording_id, within=30)
        assert crash.crashes == 1
        assert status["status"] == "transcribed", status


async def test_redis_lost_as_a_failed_webhook_is_settled_holds_nothing_back(
    redis_url: str,
) -> None:
    # Redis dies as the worker reads how long the subscriber has been failing, after an attempt
    # it answered 503: the worker, which holds the delivery for as long as it lives, attempts
    # it again once Redis is back (it used to keep holding it, and the recording's events
    # waited behind it until the worker stopped).
    receiver = Receiver(answers=[503, 200])
    async with (
        worker_behind_a_crash(
            redis_url,
            b"HGET",
            b"rr:pending:",
            down_for=1.0,
            delivery_allow_networks="127.0.0.0/8",
            delivery_retry_schedule="0,0.3",
        ) as (relay, crash),
        serve(receiver.app()) as url,
    ):
        await relay.subscribe(f"{url}/hook", events=["recording.completed"])
        recording_id = await relay.call()

        async def delivered() -> bool:
            return any(r.status == 200 for r in receiver.got)

        await eventually(delivered, within=20, what="the webhook delivered after the crash")
        assert crash.crashes == 1
        assert {r.headers["webhook-id"] for r in receiver.got} == {
            receiver.got[0].headers["webhook-id"]
        }
        status = await relay.settled(recording_id, within=30)  # the job rode it out too
        assert status["status"] == "transcribed", status


async def test_a_job_queued_as_redis_is_lost_says_so(redis_url: str, redis: Redis) -> None:
    # The call that queues a job never reaches Redis. arq's own `enqueue_job` took the
    # error for "queued already" and returned as if it had queued it: a recording's collector
    # was lost that way, and the recording waited for ever.
    recording_id = "0b8e2a4c-5d6f-4a1b-9c3d-7e8f9a0b1c2d"
    job = jobs.job_id(jobs.COLLECT_TRANSCRIPTION, recording_id)
    async with redis_crash(redis_url) as (crash, through_it):
        client = Redis.from_url(through_it)
        try:
            crash.crash_after(b"EVALSHA", job.encode(), applied=False, down_for=0)
            with pytest.raises(RedisConnectionError):
                await jobs.enqueue(client, jobs.COLLECT_TRANSCRIPTION, recording_id, defer=60)
            assert crash.crashes == 1
            assert await redis.zscore(jobs.QUEUE, job) is None  # the caller runs again
            assert await jobs.enqueue(client, jobs.COLLECT_TRANSCRIPTION, recording_id, defer=60)
            assert await redis.zscore(jobs.QUEUE, job) is not None
            assert not await jobs.enqueue(client, jobs.COLLECT_TRANSCRIPTION, recording_id)
        finally:
            await client.aclose()


async def test_a_mark_left_without_its_request_is_bought_once_plivo_shows_no_sign_of_it(
    redis_url: str, redis: Redis
) -> None:
    # A worker that died between its mark and its request leaves the mark: Plivo has no
    # callback, no transcription and no listing of it, so once the mark is
    # PLIVO_UNKNOWN_REQUEST_WAIT old the transcription is bought, once.
    async with running_relay(redis_url, worker=False, plivo_unknown_request_wait=1) as relay:
        recording_id = await relay.call()
        store = RecordingStore(redis, relay.settings.recording_retention_days)
        await store.mark_transcription(recording_id, int(time.time() * 1000))
        relay.start_worker()
        status = await relay.settled(recording_id)
        assert status["status"] == "transcribed", status
        assert relay.sandbox_requests(BUY) == 1
        assert status["steps"]["transcription_requested_at"] is not None


async def test_a_request_that_reached_plivo_before_its_answer_was_lost_is_not_bought_again(
    redis_url: str, redis: Redis
) -> None:
    # The worker died after Plivo took the request but before it heard so: Plivo lists the
    # transcription as in progress (its GET answers 404 meanwhile), and it is collected.
    async with running_relay(redis_url, worker=False, plivo_unknown_request_wait=1) as relay:
        relay.faults.transcription_delay = 3
        recording_id = await relay.call()
        mark = int(time.time() * 1000)
        store = RecordingStore(redis, relay.settings.recording_retention_days)
        await store.mark_transcription(recording_id, mark)
        bought = await relay.http.post(
            f"{relay.sandbox_url}/v1/Account/{AUTH_ID}/Transcription/{recording_id}/",
            auth=(AUTH_ID, AUTH_TOKEN),
            json={"transcription_callback_url": f"{relay.url}/plivo/transcription"},
        )
        assert bought.status_code == 201
        relay.start_worker()
        status = await relay.settled(recording_id)
        assert status["status"] == "transcribed", status
        assert relay.sandbox_requests(BUY) == 1  # the one that reached Plivo
        assert status["steps"]["transcription_requested_at"] == mark


async def test_workers_killed_over_and_over_lose_nothing_and_buy_each_transcription_once(
    redis_url: str,
) -> None:
    # A crash window is found by many kills, not one: a worker taking two recordings at a time
    # through slow Plivo requests is killed at random moments, ten times, and another finishes
    # what they left. Every recording is transcribed and bought once; every webhook arrives.
    async with relay_for_kills(redis_url, max_jobs=2, plivo_latency=0.2) as (
        relay,
        receiver,
        env,
    ):
        ids = [await relay.call() for _ in range(16)]
        chance = random.Random(17)
        # Killed mid-request, copying audio, sending a webhook, waiting: wherever it is.
        await kill_at_random(env, 10, chance)
        relay.faults.latency = 0
        survivor = await start_worker(env)
        try:
            for recording_id in ids:
                status = await relay.settled(recording_id, within=90)
                assert status["status"] == "transcribed", status

            async def every_webhook() -> bool:  # at least once each: subscribers de-duplicate
                return len({r.headers["webhook-id"] for r in receiver.got}) == 3 * len(ids)

            await eventually(every_webhook, within=60, what="every webhook")
        finally:
            survivor.send_signal(signal.SIGTERM)
            await survivor.wait()
        # None bought twice, none never. (A request killed before the sandbox read it bought
        # nothing: the sandbox counts what it created.)
        assert relay.sandbox.state.counters.bought == dict.fromkeys(ids, 1)
