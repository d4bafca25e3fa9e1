"""The Plivo client against the sandbox: numbers, errors, retries, Retry-After, the limiter."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from sandbox.app import media_bytes
from service.plivo.client import NotFound, PlivoClient, PlivoError, count_requests
from service.storage import keys
from service.storage.rate_limit import RateLimiter
from tests.support.sandbox_fixture import running_sandbox
from tests.support.settings import AUTH_ID, AUTH_TOKEN, SUB_AUTH_ID, SUB_AUTH_TOKEN
from tests.support.waiting import eventually


def client(url: str, **options: object) -> PlivoClient:
    credentials = {AUTH_ID: AUTH_TOKEN, SUB_AUTH_ID: SUB_AUTH_TOKEN}
    return PlivoClient(url, credentials, backoff=0.01, **options)  # type: ignore[arg-type]


async def test_recording_numbers_come_back_as_numbers() -> None:
    async with running_sandbox() as plivo:
        recording = plivo.sandbox.state.new_recording(AUTH_ID, 345_100)
        api = client(plivo.url)
        got = (await api.get_recording(AUTH_ID, str(recording["recording_id"]))).document()
        assert got["recording_duration_ms"] == 345100
        assert isinstance(got["recording_start_ms"], (int, float))
        assert got["recording_type"] == "normal"
        await api.aclose()


async def test_errors_are_typed_with_plivos_message() -> None:
    async with running_sandbox() as plivo:
        api = client(plivo.url)
        with pytest.raises(NotFound, match="Recording not found"):
            await api.get_recording(AUTH_ID, "nope")
        bad = PlivoClient(plivo.url, {AUTH_ID: "wrong-token"})
        with pytest.raises(PlivoError) as error:
            await bad.get_recording(AUTH_ID, "nope")
        assert error.value.status == 401
        assert "wrong-token" not in str(error.value)
        await api.aclose()
        await bad.aclose()


async def test_5xx_are_retried_and_429_waits_retry_after() -> None:
    async with running_sandbox() as plivo:
        recording = plivo.sandbox.state.new_recording(AUTH_ID, 1000)
        api = client(plivo.url)
        plivo.sandbox.state.faults.burst_429 = 2
        plivo.sandbox.state.faults.retry_after = 0.3
        started = time.monotonic()
        with count_requests() as spent:
            await api.get_recording(AUTH_ID, str(recording["recording_id"]))
        assert spent[0] == 3
        assert time.monotonic() - started >= 0.6  # waited as told, twice
        plivo.sandbox.state.faults.error_rate = 1.0
        with pytest.raises(PlivoError) as error, count_requests() as spent:
            await api.get_recording(AUTH_ID, str(recording["recording_id"]))
        assert error.value.status == 500
        assert spent[0] == 5  # the first try and four retries
        await api.aclose()


async def test_listing_pages_and_filters() -> None:
    async with running_sandbox() as plivo:
        state = plivo.sandbox.state
        for n in range(45):
            state.new_recording(AUTH_ID, 1000, call_uuid="call-a" if n % 3 == 0 else None)
        api = client(plivo.url)
        everything, offset, more = [], 0, True
        while more:
            page, more = await api.recordings_page(AUTH_ID, offset, 20)
            everything += page
            offset += 20
        assert len(everything) == 45 and offset == 60
        assert len({r["recording_id"] for r in everything}) == 45
        times = [r["add_time"] for r in everything]
        assert times == sorted(times, reverse=True)  # newest first
        some, more = await api.recordings_page(AUTH_ID, 0, 20, call_uuid="call-a")
        assert len(some) == 15 and not more
        await api.aclose()


async def test_transcriptions_create_get_delete_and_media() -> None:
    async with running_sandbox() as plivo:
        plivo.sandbox.state.faults.transcription_delay = 0.1
        recording = plivo.sandbox.state.new_recording(AUTH_ID, 1000)
        rid = str(recording["recording_id"])
        api = client(plivo.url)
        await api.create_transcription(AUTH_ID, rid, None)
        with pytest.raises(NotFound):
            await api.get_transcription(AUTH_ID, rid, "transcription")

        async def ready() -> bool:
            try:
                await api.get_transcription(AUTH_ID, rid, "transcription")
            except NotFound:
                return False
            return True

        await eventually(ready, within=5, what="transcription ready")
        for kind in ("transcription", "raw", "diarized"):
            assert (await api.get_transcription(AUTH_ID, rid, kind))["status"] == "success"
        await api.delete_transcription(AUTH_ID, rid)
        with pytest.raises(NotFound):
            await api.get_transcription(AUTH_ID, rid, "raw")
        async with api.media(AUTH_ID, str(recording["recording_url"])) as answer:
            media = b"".join([chunk async for chunk in answer.aiter_bytes()])
        assert len(media) > 0 and media == media_bytes(rid, "denoised", len(media))
        await api.delete_recording(AUTH_ID, rid)
        with pytest.raises(NotFound):
            await api.delete_recording(AUTH_ID, rid)
        await api.aclose()


async def test_shared_limiter_keeps_all_processes_under_the_limit(redis: Redis) -> None:
    limit, window = 10, 0.5
    limiters = [RateLimiter(redis, limit, window) for _ in range(3)]  # three "workers"
    stamps: list[float] = []

    async def take(limiter: RateLimiter) -> None:
        await limiter.acquire(AUTH_ID)
        stamps.append(time.monotonic())

    await asyncio.gather(*(take(limiters[n % 3]) for n in range(30)))
    stamps.sort()
    for n in range(len(stamps) - limit):
        assert stamps[n + limit] - stamps[n] >= window * 0.95, "more than the limit in a window"
    assert stamps[-1] - stamps[0] < window * 3 + 0.5  # and no slower than it allows


async def test_a_share_of_the_limit_takes_no_more_and_leaves_the_rest(redis: Redis) -> None:
    whole = RateLimiter(redis, 10, 60)  # a window longer than the test
    sweeps = whole.share("reconcile", 0.2)  # 2 of the 10
    for _ in range(2):
        await sweeps.acquire(AUTH_ID)
    third = asyncio.create_task(sweeps.acquire(AUTH_ID))
    for _ in range(8):  # the rest of the window is still the others'
        await whole.acquire(AUTH_ID)
    assert not third.done()  # the share is spent until its requests leave the window
    third.cancel()
    await asyncio.gather(third, return_exceptions=True)
    assert await redis.zcard(keys.plivo_rate(AUTH_ID)) == 10  # counted in the whole, too
