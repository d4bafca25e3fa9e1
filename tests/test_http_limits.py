"""The web process (`python -m service.web`, as the Procfile runs it) bounds what a request may
cost before the app sees it (oversized heads get 431, bodies 413, requests sent too slowly
408), redirects nowhere a caller names, and sends its security headers on every answer."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.local.embedded_redis import free_port
from tests.support.plivo import rid, signed_headers
from tests.support.settings import ADMIN_TOKEN, AUTH_ID, AUTH_TOKEN
from tests.support.waiting import eventually


@dataclass
class WebProcess:
    port: int
    pid: int
    log: Path

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@pytest.fixture
async def web(redis_url: str, tmp_path: Path) -> AsyncIterator[WebProcess]:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "REDIS_URL": redis_url,
        "PLIVO_AUTH_ID": AUTH_ID,
        "PLIVO_AUTH_TOKEN": AUTH_TOKEN,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "ARCHIVE_URL": f"file://{tmp_path}/archive",
        "HTTP_REQUEST_TIMEOUT": "1",
    }
    env.pop("PUBLIC_BASE_URL", None)
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service.web", env=env, stdout=out, stderr=out
        )
    try:

        async def up() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"http://127.0.0.1:{port}/healthz")).is_success
            except httpx.TransportError:
                return False

        await eventually(up, what="the web process serving")
        yield WebProcess(port, process.pid, log)
    finally:
        process.terminate()
        await process.wait()


async def exchange(port: int, data: bytes, within: float = 5.0) -> bytes:
    """Send `data` and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(within):
            return await reader.read(-1)
    finally:
        writer.close()


async def test_a_head_over_64_kib_is_431(web: WebProcess) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    answer = await exchange(web.port, head)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"over 64 KiB" in answer
    many = b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % n for n in range(9000))
    assert (await exchange(web.port, many + b"\r\n")).startswith(b"HTTP/1.1 431 ")


async def test_huge_header_blocks_in_parallel_do_not_grow_the_process(web: WebProcess) -> None:
    before = web.rss_kib()

    async def flood() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", web.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(64):  # up to 4 MiB, unless the server hangs up first
                writer.write(b"a" * 65536)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    await asyncio.gather(*(flood() for _ in range(8)))
    assert (
        await exchange(web.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    ).startswith(b"HTTP/1.1 200 ")
    assert web.rss_kib() - before < 16 * 1024  # 8 x 4 MiB would be 32 MiB


@pytest.mark.slow  # waits seconds on the relay's own timers
@pytest.mark.parametrize(
    "partial",
    [
        b"",  # connects and says nothing
        b"POST /plivo/recording HTTP/1.1\r\nHost: x\r\n",  # half a head
        b"POST /plivo/recording HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\nRecordingID=",  # half a body
    ],
    ids=["silent", "half-head", "half-body"],
)
async def test_a_request_not_sent_in_time_is_408_and_closed(
    web: WebProcess, partial: bytes
) -> None:
    answer = await exchange(web.port, partial, within=5.0)  # HTTP_REQUEST_TIMEOUT is 1 s
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"not received within 1 s" in answer
    assert "Traceback" not in await asyncio.to_thread(web.log.read_text)


async def test_without_public_base_url_the_web_process_says_what_to_set(web: WebProcess) -> None:
    async def warned() -> bool:
        return "set PUBLIC_BASE_URL" in await asyncio.to_thread(web.log.read_text)

    await eventually(warned, what="the start-up warning")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web.port}") as client:
        refused = await client.post(
            "/plivo/recording",
            data={"RecordingID": "x"},
            headers={"X-Plivo-Signature-V3": "bm8=", "X-Plivo-Signature-V3-Nonce": "1"},
        )
    assert refused.status_code == 403
    assert "PUBLIC_BASE_URL" in refused.json()["error"]


async def test_caller_chosen_strings_cannot_forge_a_log_line(web: WebProcess) -> None:
    # (CR and LF never reach the app: URL parsing drops them; these line breaks do)
    request = b"GET /v1/subscriptions/x%0B%1CFORGED%20line%00%E2%80%A8 HTTP/1.1\r\nHost: x\r\n"
    answer = await exchange(web.port, request + b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 401 ")

    async def logged() -> bool:
        return "FORGED" in await asyncio.to_thread(web.log.read_text)

    await eventually(logged, what="the refusal logged")
    lines = (await asyncio.to_thread(web.log.read_text)).splitlines()
    assert not [line for line in lines if line.startswith("FORGED")]
    assert any("x\\x0b\\x1cFORGED line\\x00\\u2028 refused: 401" in line for line in lines)


async def test_a_body_over_its_limit_is_413_before_the_app_whether_declared_or_chunked(
    web: WebProcess,
) -> None:
    body = b"token=" + b"a" * 70_000  # arrives with its head, in one write
    head = (
        b"POST /dashboard/login HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
    )
    declared = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    answer = await exchange(web.port, declared)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]
    assert b"body over 64 KiB" in answer
    chunk = b"%x\r\n%s\r\n" % (len(body), body)
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk + b"0\r\n\r\n"
    assert (await exchange(web.port, chunked)).startswith(b"HTTP/1.1 413 ")


async def test_large_logins_in_parallel_do_not_grow_the_process(web: WebProcess) -> None:
    before = web.rss_kib()

    async def post() -> None:
        head = (
            b"POST /dashboard/login HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000000\r\n\r\n"
        )
        answer = await exchange(web.port, head + b"token=" + b"a" * 65536)
        assert answer.startswith(b"HTTP/1.1 413 ")

    await asyncio.gather(*(post() for _ in range(4)))
    assert web.rss_kib() - before < 16 * 1024


async def test_a_long_calls_transcription_callback_is_taken(web: WebProcess) -> None:
    # Four hours of speech is about 250 KB of text: it must not fall back to polling.
    text = " ".join(["word"] * 60_000)  # 300 KB
    params = {"recording_id": rid("long call"), "transcription": text, "duration": "14400"}
    url = f"http://127.0.0.1:{web.port}/plivo/transcription"
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            url, data=params, headers=signed_headers("POST", "", params, base=url)
        )
        assert answer.status_code == 200, answer.text
        too_long = {**params, "transcription": "a" * (1024 * 1024 + 1)}
        refused = await client.post(url, data=too_long)
        assert refused.status_code == 413


async def test_no_redirect_carries_the_callers_host(web: WebProcess) -> None:
    request = b"GET /v1/subscriptions/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    answer = await exchange(web.port, request)
    assert b"evil.example" not in answer
    assert not answer.startswith((b"HTTP/1.1 30",))


@pytest.mark.parametrize("path", ["/healthz", "/plivo/recording", "/dashboard/login", "/v1/health"])
async def test_every_response_carries_the_security_headers(web: WebProcess, path: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web.port}") as client:
        answer = await client.get(path)
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    if path.startswith(("/dashboard", "/v1/")):
        assert answer.headers["cache-control"] == "no-store"
