"""A whole relay for pipeline tests: the Plivo sandbox, the web app and a worker, all real."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sandbox.app import Sandbox, create_sandbox
from sandbox.state import Faults
from service.local.embedded_redis import free_port
from service.settings import Settings
from service.web.app import create_app
from tests.support.receivers import Receiver
from tests.support.servers import serve
from tests.support.settings import (
    ADMIN_TOKEN,
    AUTH_ID,
    AUTH_TOKEN,
    SUB_AUTH_ID,
    SUB_AUTH_TOKEN,
    make_settings,
)
from tests.support.waiting import eventually
from workers.worker import WorkerProcess


@dataclass
class Relay:
    """A running relay: its settings, URL, sandbox, a client, and its worker."""

    settings: Settings
    url: str
    sandbox_url: str
    sandbox: Sandbox
    http: httpx.AsyncClient
    worker: WorkerProcess | None = None
    _worker_task: asyncio.Task[None] | None = None

    @property
    def faults(self) -> Faults:
        return self.sandbox.state.faults

    async def call(
        self, style: str = "record_xml", method: str = "POST", heard: bool = True, **extra: Any
    ) -> str:
        """Have the sandbox record a call and tell the relay (`heard`: and the relay took the
        callback); the recording's id."""
        body = {"relay_url": f"{self.url}/plivo/recording", "style": style, "method": method}
        response = await self.http.post(f"{self.sandbox_url}/sandbox/calls", json={**body, **extra})
        assert response.status_code == 200, response.text
        assert (response.json()["callback_status"] == 200) is heard, response.text
        return str(response.json()["recording_id"])

    async def subscribe(self, url: str, **fields: Any) -> dict[str, Any]:
        """Subscribe `url` (a receiver's, on loopback) through the management API; the
        subscription, its secret included."""
        response = await self.http.post(
            f"{self.url}/v1/subscriptions",
            json={"url": url, **fields},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def status(self, recording_id: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return await self.http.get(f"{self.url}/v1/recordings/{recording_id}", headers=headers)

    async def settled(self, recording_id: str, within: float = 20.0) -> dict[str, Any]:
        """The recording's status once it is transcribed or failed."""
        result: dict[str, Any] = {}

        async def done() -> bool:
            response = await self.status(recording_id)
            result.update(response.json())
            return response.status_code == 200 and result.get("status") in ("transcribed", "failed")

        await eventually(done, within=within, what=f"recording {recording_id} settled")
        return result

    def sandbox_requests(self, route: str) -> int:
        return self.sandbox.state.counters.by_route.get(route, 0)

    def start_worker(self, settings: Settings | None = None) -> None:
        """A worker in this process, on the relay's settings or on `settings`."""
        self.worker = WorkerProcess(settings or self.settings)
        self._worker_task = asyncio.create_task(self.worker.run())


@asynccontextmanager
async def running_relay(
    redis_url: str, worker: bool = True, **overrides: object
) -> AsyncIterator[Relay]:
    sandbox_app = create_sandbox({AUTH_ID: AUTH_TOKEN, SUB_AUTH_ID: SUB_AUTH_TOKEN})
    sandbox: Sandbox = sandbox_app.state.sandbox
    sandbox.state.faults.transcription_delay = 0.2
    async with AsyncExitStack() as stack:
        sandbox_url = await stack.enter_async_context(serve(sandbox_app))
        sandbox.state.base_url = sandbox_url
        port = free_port()
        values: dict[str, object] = {
            "public_base_url": f"http://127.0.0.1:{port}",
            "plivo_api_url": sandbox_url,
            "transcription_poll_schedule": "0.3",
            **overrides,
        }
        settings = make_settings(redis_url, **values)
        url = await stack.enter_async_context(serve(create_app(settings), port=port))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        relay = Relay(settings, url, sandbox_url, sandbox, http)
        if worker:
            relay.start_worker()
        try:
            yield relay
        finally:
            if relay.worker is not None:
                relay.worker.stop()
                await asyncio.gather(relay._worker_task, return_exceptions=True)
            await sandbox.http.aclose()


async def start_worker(relay_env: dict[str, str], log: Path | None = None) -> Process:
    """A `python -m workers` process; its output goes to `log` (pytest shows it on failure)."""
    start = asyncio.create_subprocess_exec
    if log is None:
        null = subprocess.DEVNULL
        return await start(sys.executable, "-m", "workers", env=relay_env, stdout=null, stderr=null)
    with log.open("ab") as out:
        return await start(sys.executable, "-m", "workers", env=relay_env, stdout=out, stderr=out)


@asynccontextmanager
async def relay_for_kills(
    redis_url: str, max_jobs: int, plivo_latency: float
) -> AsyncIterator[tuple[Relay, Receiver, dict[str, str]]]:
    """A relay with no worker of its own, a subscriber on loopback, and the environment of the
    worker processes to start and kill (`max_jobs` jobs each; every Plivo request taking
    `plivo_latency` s, so that kills land mid-request)."""
    admit = "127.0.0.0/8"
    receiver = Receiver()
    async with (
        running_relay(redis_url, worker=False, delivery_allow_networks=admit) as relay,
        serve(receiver.app()) as url,
    ):
        await relay.subscribe(f"{url}/hook")
        env = worker_env(
            relay,
            PLIVO_UNKNOWN_REQUEST_WAIT="1",
            WORKER_MAX_JOBS=str(max_jobs),
            DELIVERY_TIMEOUT="2",
            DELIVERY_ALLOW_NETWORKS=admit,
        )
        relay.faults.latency = plivo_latency
        yield relay, receiver, env


async def kill_at_random(
    env: dict[str, str],
    times: int,
    chance: random.Random,
    meanwhile: Callable[[int], Awaitable[None]] | None = None,
) -> None:
    """`times` worker processes one after another, each killed (SIGKILL) at a random moment
    after its start-up (about half a second), whatever it is doing then: a crash window is
    found by many kills, not one. `meanwhile(n)` runs once the n-th (from 0) has started."""
    for n in range(times):
        worker = await start_worker(env)
        if meanwhile is not None:
            await meanwhile(n)
        await asyncio.sleep(chance.uniform(0.5, 2.0))  # the kill's moment, not a wait
        worker.send_signal(signal.SIGKILL)
        await worker.wait()


def worker_env(relay: Relay, **extra: str) -> dict[str, str]:
    """The environment of a `python -m workers` process serving `relay`."""
    settings = relay.settings
    return {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "PLIVO_AUTH_ID": AUTH_ID,
        "PLIVO_AUTH_TOKEN": AUTH_TOKEN,
        "PLIVO_SUBACCOUNTS": f"{SUB_AUTH_ID}:{SUB_AUTH_TOKEN}",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "PLIVO_API_URL": settings.plivo_api_url,
        "PUBLIC_BASE_URL": str(settings.public_base_url),
        "ARCHIVE_URL": settings.archive_url,
        "TRANSCRIPTION_POLL_SCHEDULE": "0.3",
        "WORKER_JOB_TIMEOUT": "2",
        "LOG_LEVEL": "warning",
        **extra,
    }


@asynccontextmanager
async def subscriber(
    relay: Relay, receiver: Receiver, query: str = "", **fields: Any
) -> AsyncIterator[dict[str, Any]]:
    """`receiver` served on loopback and subscribed to `relay` (at `/hook<query>`, with
    `fields`); the subscription."""
    async with serve(receiver.app()) as url:
        yield await relay.subscribe(f"{url}/hook{query}", **fields)
