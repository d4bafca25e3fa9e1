"""A worker killed mid-pipeline (kill -9) loses nothing: another finishes, no event twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from redis.asyncio import Redis

from tests.conftest import ADMIN_TOKEN, AUTH_ID, AUTH_TOKEN, SUB_AUTH_ID, SUB_AUTH_TOKEN
from tests.pipeline_env import running_relay
from tests.waiting import eventually


async def start_worker(relay_env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers",
        env=relay_env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_killed_worker_loses_nothing(redis_url: str, redis: Redis) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        settings = relay.settings
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "PLIVO_AUTH_ID": AUTH_ID,
            "PLIVO_AUTH_TOKEN": AUTH_TOKEN,
            "PLIVO_SUBACCOUNTS": f"{SUB_AUTH_ID}:{SUB_AUTH_TOKEN}",
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "PLIVO_API_URL": settings.plivo_api_url,
            "PUBLIC_BASE_URL": str(settings.public_base_url),
            "TRANSCRIPTION_POLL_SCHEDULE": "0.3",
            "WORKER_JOB_TIMEOUT": "2",
            "LOG_LEVEL": "warning",
        }
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
            for recording_id in ids:
                status = await relay.settled(recording_id, within=40)
                assert status["status"] == "transcribed", status
                kinds = [event["type"] for event in status["events"]]
                assert kinds == ["recording.completed", "recording.transcribed"]
        finally:
            second.send_signal(signal.SIGTERM)
            await second.wait()
        route = "POST /v1/Account/{auth_id}/Transcription/{recording_id}/"
        assert relay.sandbox_requests(route) == len(ids)  # none bought twice
