"""Concurrent callbacks share Redis round trips, and each still gets its own answer."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from service.domain.callbacks import parse_recording
from service.storage import jobs
from service.storage.batch import Batcher
from service.storage.recordings import Outcome, RecordingStore
from service.storage.script import Script
from tests.support.plivo import rid


async def test_batches_form_under_load_and_answers_stay_in_order() -> None:
    batches: list[list[int]] = []

    async def send(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0)
        return [item * 10 for item in items]

    batcher: Batcher[int, int] = Batcher(send)
    results = await asyncio.gather(*(batcher(n) for n in range(100)))
    assert results == [n * 10 for n in range(100)]
    assert len(batches) < 100  # calls that arrived while one batch was out went together
    assert sorted(n for batch in batches for n in batch) == list(range(100))


async def test_a_failed_batch_fails_its_callers_only() -> None:
    calls = 0

    async def send(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("redis went away")
        return items

    batcher: Batcher[int, int] = Batcher(send)
    with pytest.raises(ConnectionError):
        await batcher(1)
    assert await batcher(2) == 2


def callback(recording_id: str, **extra: str):
    return parse_recording({"RecordingID": recording_id, **extra}, "MA", 0.0)


async def test_store_accepts_many_at_once_with_duplicates_inside_one_batch(redis: Redis) -> None:
    store = RecordingStore(redis, retention_days=1)
    outcomes = await asyncio.gather(
        *(store.accept(callback(rid(f"rec-{n % 10}"))) for n in range(50)),
        store.accept(
            parse_recording(
                {"RecordingUUID": rid("mpc-1"), "EventName": "MPCRecordingPaused"}, "MA", 0
            )
        ),
    )
    assert outcomes.count(Outcome.QUEUED) == 10
    assert outcomes.count(Outcome.DUPLICATE) == 40
    assert outcomes[-1] is Outcome.RECORDED
    assert await redis.zcard(jobs.QUEUE) == 10
    await store.aclose()


async def test_script_survives_a_flushed_script_cache(redis: Redis) -> None:
    store = RecordingStore(redis, retention_days=1)
    assert await store.accept(callback(rid("rec-a"))) is Outcome.QUEUED
    await redis.script_flush()  # as after a Redis restart
    assert await store.accept(callback(rid("rec-b"))) is Outcome.QUEUED
    assert await redis.zcard(jobs.QUEUE) == 2
    await store.aclose()


async def test_script_reconnects_after_the_server_drops_it(redis: Redis) -> None:
    script = Script(redis, "return ARGV[1]")
    assert await script([], ["one"]) == b"one"
    await redis.client_kill_filter(_type="normal", skipme=True)
    assert await script([], ["two"]) == b"two"
    await script.aclose()
