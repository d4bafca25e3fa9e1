"""`make run` (`python -m service.local`): what it prints works as printed, its subscriber
prints the events it verifies, everything listens on loopback on the ports it names, and a
port taken by another program stops it before anything starts."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from service.local.embedded_redis import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "local-run-admin-token"


def local_env(redis_url: str, **ports: int) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PLIVO_", "ADMIN_TOKEN", "SANDBOX_", "RECEIVER_", "HOST"))
    }
    env.update(
        REDIS_URL=redis_url,
        ARCHIVE_URL=f"file://{tempfile.mkdtemp(prefix='relay-local-')}",
        ADMIN_TOKEN=TOKEN,
        RECONCILE_INTERVAL="0",
        **{name: str(port) for name, port in ports.items()},
    )
    return env


@asynccontextmanager
async def make_run(
    env: dict[str, str],
) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    """`python -m service.local` with `env`, and the lines it printed so far."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.local",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []

    async def read() -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            lines.append(line.decode().rstrip())

    reader = asyncio.create_task(read())
    try:
        yield process, lines
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 40)
            except TimeoutError:
                process.kill()
                await process.wait()
        await reader


def printed(lines: list[str], pattern: str) -> str | None:
    for line in lines:
        if re.search(pattern, line):
            return line
    return None


async def test_make_run_prints_steps_that_work_and_its_receiver_prints_verified_events(
    redis_url: str,
) -> None:
    ports = {"PORT": free_port(), "SANDBOX_PORT": free_port(), "RECEIVER_PORT": free_port()}
    async with (
        make_run(local_env(redis_url, **ports)) as (process, lines),
        httpx.AsyncClient(timeout=10) as http,
    ):

        async def ready() -> bool:
            try:
                answer = await http.get(f"http://127.0.0.1:{ports['PORT']}/readyz")
            except httpx.TransportError:
                return False
            return answer.status_code == 200 and printed(lines, "then watch it") is not None

        await eventually(ready, within=60, what="make run ready")
        for name, port in ports.items():
            assert printed(lines, rf"{port}\b.*\({'HOST, ' if name == 'PORT' else ''}{name}\)")
        listening = {
            c.laddr.port: c.laddr.ip
            for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert {listening[port] for port in ports.values()} == {"127.0.0.1"}

        steps = [line.split("| ", 1)[1].strip() for line in lines if "|   curl " in line]
        subscribe = next(step for step in steps if "/v1/subscriptions" in step)
        simulate = next(step for step in steps if "/sandbox/calls" in step)
        shell = {**os.environ, "ADMIN_TOKEN": TOKEN}
        for step in (subscribe, simulate):
            ran = await asyncio.create_subprocess_shell(
                step, env=shell, stdout=asyncio.subprocess.PIPE
            )
            out, _ = await ran.communicate()
            assert ran.returncode == 0, step
        recording_id = re.search(r'"recording_id":\s*"([^"]+)"', out.decode())
        assert recording_id is not None, out

        async def delivered() -> bool:
            wanted = rf"^receiver\s*\| verified recording.completed recording_id={recording_id[1]}"
            return printed(lines, wanted) is not None

        await eventually(delivered, within=60, what="the receiver printing the verified event")
        assert not printed(lines, "refused a webhook")
        assert TOKEN not in "\n".join(lines)  # the admin token is never printed
    assert process.returncode == 0


async def test_a_port_taken_stops_make_run_naming_the_variable(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = local_env(redis_url, PORT=free_port(), SANDBOX_PORT=port)
        async with make_run(env) as (process, lines):
            assert await asyncio.wait_for(process.wait(), 30) == 2
    assert printed(lines, rf"port {port} \(SANDBOX_PORT\) is taken"), lines
    assert not printed(lines, r"^(web|worker|sandbox)\s*\|")  # nothing was started
