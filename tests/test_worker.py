"""The worker process starts from the environment, rides out Redis restarts with one webhook
dispatcher, and stops cleanly on SIGTERM, whatever it is doing, within its grace period."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from service.local.embedded_redis import EmbeddedRedis, free_port
from service.storage import jobs
from tests.support.pipeline_env import running_relay, start_worker, worker_env
from tests.support.receivers import Receiver
from tests.support.servers import serve
from tests.support.settings import ADMIN_TOKEN, AUTH_ID, AUTH_TOKEN, make_settings
from tests.support.waiting import eventually
from workers.worker import WorkerProcess

pytestmark = pytest.mark.slow


async def test_worker_process_shuts_down_cleanly_on_sigterm(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "PLIVO_AUTH_ID": AUTH_ID,
        "PLIVO_AUTH_TOKEN": AUTH_TOKEN,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "ARCHIVE_URL": f"file://{tmp_path}/archive",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        health_key = jobs.QUEUE + ":health-check"

        async def started() -> bool:
            return bool(await redis.exists(health_key))

        await eventually(started, what="worker start")
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, raw = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
    stderr = raw.decode()
    assert process.returncode == 0, stderr
    assert "shutdown on SIGTERM" in stderr
    assert AUTH_TOKEN not in stderr
    assert not await redis.exists(health_key)


async def test_after_a_redis_restart_one_dispatcher_runs_and_sigterm_records_what_is_in_flight(
    tmp_path: Path,
) -> None:
    admit = "127.0.0.0/8"
    with EmbeddedRedis(tmp_path / "redis", appendfsync="always") as server:
        async with running_relay(server.url, worker=False, delivery_allow_networks=admit) as relay:
            receiver = Receiver(delay=1.5)  # slow, but answers within DELIVERY_TIMEOUT
            async with serve(receiver.app()) as url:
                created = await relay.http.post(
                    f"{relay.url}/v1/subscriptions",
                    json={"url": f"{url}/hook", "events": ["recording.completed"]},
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                )
                assert created.status_code == 201
                log = tmp_path / "worker.log"
                env = worker_env(
                    relay, DELIVERY_ALLOW_NETWORKS=admit, LOG_LEVEL="info", DELIVERY_TIMEOUT="5"
                )
                worker = await start_worker(env, log)
                try:
                    await eventually(lambda: said(log, "Starting worker"), what="worker start")
                    server.kill()
                    await eventually(lambda: said(log, "waiting for Redis"), what="Redis lost")
                    server.start(port=server.port)
                    await eventually(lambda: said(log, "Redis answers again"), what="restart")
                    recording_id = await relay.call()

                    async def in_flight() -> bool:
                        return len(receiver.got) == 1

                    await eventually(in_flight, what="the webhook being sent")
                    worker.send_signal(signal.SIGTERM)
                    started = time.monotonic()
                    async with asyncio.timeout(15):
                        await worker.wait()
                    assert worker.returncode == 0, log.read_text()
                    assert time.monotonic() - started < 10  # WORKER_SHUTDOWN_GRACE is 20
                finally:
                    if worker.returncode is None:
                        worker.kill()
                status = (await relay.status(recording_id)).json()
                # The attempt in flight finished and was recorded, once.
                assert [a["status_code"] for a in status["attempts"]] == [200]
                assert len(receiver.got) == 1
                assert log.read_text().count("shutdown on SIGTERM") == 1


async def said(log: Path, words: str, times: int = 1) -> bool:
    def count() -> int:
        return log.read_text().count(words) if log.exists() else 0

    return await asyncio.to_thread(count) >= times


async def test_a_worker_process_keeps_one_dispatcher_through_redis_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    async def logged(words: str, times: int) -> bool:
        return sum(words in r.getMessage() for r in caplog.records) >= times

    with EmbeddedRedis(tmp_path / "redis") as server:
        process = WorkerProcess(make_settings(server.url))
        running = asyncio.create_task(process.run())
        try:
            for restart in (1, 2):
                await eventually(lambda n=restart: logged("Starting worker", n), what="arq polling")
                server.kill()
                await eventually(lambda n=restart: logged("waiting for Redis", n), what="loss seen")
                server.start(port=server.port)
            await eventually(lambda: logged("Starting worker", 3), what="arq polling again")
            dispatchers = [t for t in asyncio.all_tasks() if t.get_name() == "dispatcher"]
            assert len(dispatchers) == 1
        finally:
            process.stop("SIGTERM")
            async with asyncio.timeout(10):
                await running


async def test_sigterm_while_waiting_for_redis_ends_the_worker_which_names_the_url(
    tmp_path: Path,
) -> None:
    password = "redis-password-never-logged"
    url = f"redis://:{password}@127.0.0.1:{free_port()}/0"
    env = {
        **os.environ,
        "REDIS_URL": url,
        "PLIVO_AUTH_ID": AUTH_ID,
        "PLIVO_AUTH_TOKEN": AUTH_TOKEN,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "ARCHIVE_URL": f"file://{tmp_path}/archive",
    }
    log = tmp_path / "worker.log"
    worker = await start_worker(env, log)
    try:
        await eventually(lambda: said(log, "waiting for Redis at"), what="the worker waiting")
        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5):
            await worker.wait()
    finally:
        if worker.returncode is None:
            worker.kill()
    text = log.read_text()
    assert worker.returncode == 0, text
    assert url.replace(password, "***") in text
    assert password not in text
