"""Crashes lose nothing: a worker killed mid-pipeline (kill -9), Redis killed and restarted from
its append-only file while webhooks wait to be delivered, or Redis dying right after a write
(it kept the write, its answer was lost)."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from service.embedded_redis import EmbeddedRedis
from service.storage import jobs
from service.storage.archive import Archive, day_of
from service.storage.recordings import RecordingStore
from tests.conftest import ADMIN_TOKEN
from tests.pipeline_env import Relay, running_relay, start_worker, worker_env
from tests.receivers import Receiver
from tests.redis_crash import RedisCrash, redis_crash
from tests.servers import serve
from tests.waiting import eventually

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
                assert len(await archive.keys(prefix)) == 9  # eight documents and the audio
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
                response = await relay.http.post(
                    f"{relay.url}/v1/subscriptions",
                    json={"url": f"{url}/hook"},
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                )
                assert response.status_code == 201
                env = worker_env(
                    relay,
                    # A job waits for Redis for 4 s of it. A claim of a job or a webhook
                    # whose answer the crash lost waits for its lock (15 s) or lease (12 s).
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
            response = await relay.http.post(
                f"{relay.url}/v1/subscriptions",
                json={"url": f"{url}/hook", "events": ["recording.completed"]},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            assert response.status_code == 201
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
    redis_url: str, *markers: bytes, down_for: float
) -> AsyncIterator[tuple[Relay, RedisCrash]]:
    """A relay whose worker reaches Redis through `tests.redis_crash`, set to crash after the
    first write that carries `markers`; its web process reaches Redis directly."""
    async with (
        running_relay(redis_url, worker=False) as relay,
        redis_crash(redis_url) as (crash, through_it),
    ):
        crash.crash_after(*markers, down_for=down_for)
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


async def test_redis_lost_while_arq_watches_a_key_is_ridden_out(redis_url: str) -> None:
    # arq watches a key as it takes a job (its lock) and as it queues one (the job's key);
    # redis-py then says a lost connection with a WatchError, which must not end the worker.
    async with worker_behind_a_crash(redis_url, b"EXISTS", down_for=0.5) as (relay, crash):
        recording_id = await relay.call()
        status = await relay.settled(recording_id, within=30)
        assert crash.crashes == 1
        assert status["status"] == "transcribed", status


async def test_a_job_queued_as_redis_is_lost_says_so(redis_url: str, redis: Redis) -> None:
    # The transaction that queues a job never reaches Redis. arq's own `enqueue_job` took the
    # error for "queued already" and returned as if it had queued it: a recording's collector
    # was lost that way, and the recording waited for ever.
    recording_id = "0b8e2a4c-5d6f-4a1b-9c3d-7e8f9a0b1c2d"
    job = jobs.job_id(jobs.COLLECT_TRANSCRIPTION, recording_id)
    async with redis_crash(redis_url) as (crash, through_it):
        client = Redis.from_url(through_it)
        try:
            crash.crash_after(b"EXEC", job.encode(), applied=False, down_for=0)
            with pytest.raises(RedisConnectionError):
                await jobs.enqueue(client, jobs.COLLECT_TRANSCRIPTION, recording_id, defer=60)
            assert crash.crashes == 1
            assert await redis.zscore(jobs.QUEUE, job) is None  # the caller runs again
            assert await jobs.enqueue(client, jobs.COLLECT_TRANSCRIPTION, recording_id, defer=60)
            assert await redis.zscore(jobs.QUEUE, job) is not None
            assert not await jobs.enqueue(client, jobs.COLLECT_TRANSCRIPTION, recording_id)
        finally:
            await client.aclose()


async def test_a_mark_left_without_its_request_is_never_bought_again(
    redis_url: str, redis: Redis
) -> None:
    # A worker that died between its mark and its request leaves the mark: whether the
    # request went cannot be known, so nothing is bought, and the deadline ends the wait.
    async with running_relay(redis_url, worker=False, transcription_deadline=1) as relay:
        recording_id = await relay.call()
        store = RecordingStore(redis, relay.settings.recording_retention_days)
        await store.update(recording_id, transcription_requesting=int(time.time() * 1000))
        relay.start_worker()
        status = await relay.settled(recording_id)
        assert status["status"] == "failed", status
        assert "deadline" in status["last_error"], status
        assert [event["type"] for event in status["events"]] == [
            "recording.completed",
            "recording.failed",
            "recording.archived",  # its audio and documents are kept all the same
        ]
        assert relay.sandbox_requests(BUY) == 0
