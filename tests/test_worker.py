"""The worker process starts from the environment and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from redis.asyncio import Redis

from service import queue
from tests.conftest import ADMIN_TOKEN, AUTH_ID, AUTH_TOKEN
from tests.waiting import eventually


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
