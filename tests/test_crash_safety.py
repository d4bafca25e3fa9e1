"""Crashes lose nothing: a worker killed mid-pipeline (kill -9), or Redis killed and restarted
from its append-only file while webhooks wait to be delivered."""

from __future__ import annotations

import signal
from pathlib import Path

from redis.asyncio import Redis

from service.embedded_redis import EmbeddedRedis
from service.storage.archive import Archive, day_of
from tests.conftest import ADMIN_TOKEN
from tests.pipeline_env import running_relay, start_worker, worker_env
from tests.receivers import Receiver
from tests.servers import serve
from tests.waiting import eventually


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
        route = "POST /v1/Account/{auth_id}/Transcription/{recording_id}/"
        assert relay.sandbox_requests(route) == len(ids)  # none bought twice


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

                    await eventually(everything_delivered, within=30, what="every webhook")
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
