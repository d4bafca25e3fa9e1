"""The worker process consumes what the web process queued, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx
from redis.asyncio import Redis

from service import queue
from service.settings import Settings
from tests.conftest import ADMIN_TOKEN, AUTH_ID, AUTH_TOKEN
from tests.plivo import post_form, record_xml_params
from tests.waiting import eventually
from workers.worker import build_worker


async def test_worker_takes_queued_recordings(
    relay: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    for n in range(3):
        response = await post_form(relay, "/plivo/recording", record_xml_params(f"rec-w-{n}"))
        assert response.status_code == 200
    worker = build_worker(settings, burst=True, poll_delay=0.05, handle_signals=False)
    await worker.main()
    await worker.close()
    assert worker.jobs_complete == 3
    assert await redis.zcard(queue.QUEUE) == 0
    for n in range(3):
        assert await redis.hget(f"rr:recording:rec-w-{n}", "status") == b"picked_up"


async def test_worker_process_shuts_down_cleanly_on_sigterm(redis_url: str, redis: Redis) -> None:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "PLIVO_AUTH_ID": AUTH_ID,
        "PLIVO_AUTH_TOKEN": AUTH_TOKEN,
        "ADMIN_TOKEN": ADMIN_TOKEN,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        health_key = queue.QUEUE + ":health-check"

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
