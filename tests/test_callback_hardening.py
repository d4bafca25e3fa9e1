"""Callbacks an attacker can shape: re-split signatures, key-naming ids, deep JSON, replays of
old recordings, and transcriptions signed by the wrong account."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import pytest
from redis.asyncio import Redis

from service.domain.callbacks import parse_recording
from service.plivo.signature import canonical_v3
from service.storage import jobs
from service.storage.recordings import Outcome, RecordingStore
from tests.support.pipeline_env import running_relay
from tests.support.plivo import post_form, record_xml_params, rid, signed_headers
from tests.support.settings import PUBLIC_BASE_URL, SUB_AUTH_TOKEN
from tests.support.waiting import eventually

RECORDING = "/plivo/recording"
TRANSCRIPTION = "/plivo/transcription"
DAY_MS = 86_400_000


async def test_a_signed_callback_re_split_under_the_same_signature_is_refused(
    relay: httpx.AsyncClient, redis: Redis
) -> None:
    recording_id = rid("resplit")
    genuine = {"RecordingID": recording_id, "RecordingStartMs": str(int(time.time() * 1000))}
    headers = signed_headers("POST", RECORDING, genuine)
    forged = {"RecordingID": f"{recording_id}RecordingStartMs{genuine['RecordingStartMs']}"}
    url = PUBLIC_BASE_URL + RECORDING
    # The same characters in a different split: Plivo's algorithm signs them identically.
    assert canonical_v3("POST", url, list(genuine.items())) == canonical_v3(
        "POST", url, list(forged.items())
    )
    response = await relay.post(RECORDING, data=forged, headers=headers)
    assert response.status_code == 400
    assert "RecordingID is not a Plivo recording id" in response.json()["error"]
    assert await redis.dbsize() == 0


@pytest.mark.parametrize("body", [b"=x&RecordingID=", b'{"": "x"}'], ids=["form", "json"])
async def test_a_parameter_with_an_empty_name_is_400(
    relay: httpx.AsyncClient, redis: Redis, body: bytes
) -> None:
    kind = "application/json" if body.startswith(b"{") else "application/x-www-form-urlencoded"
    headers = {"Content-Type": kind, **signed_headers("POST", RECORDING, [("", "x")])}
    response = await relay.post(RECORDING, content=body, headers=headers)
    assert response.status_code == 400
    assert "empty name" in response.json()["error"]
    assert await redis.dbsize() == 0


async def test_ids_that_would_name_other_keys_change_no_one_elses_answer(
    relay: httpx.AsyncClient, redis: Redis
) -> None:
    good = [rid(f"batch-{n}") for n in range(200)]
    bad = [f"{good[n]}:callbacks" for n in range(0, 200, 10)]
    calls = [post_form(relay, RECORDING, record_xml_params(i)) for i in good]
    calls[5:5] = [post_form(relay, RECORDING, record_xml_params(i)) for i in bad]
    answers = await asyncio.gather(*calls)
    statuses = [response.status_code for response in answers]
    assert statuses.count(200) == len(good) and statuses.count(400) == len(bad)
    assert await redis.zcard(jobs.QUEUE) == len(good)


async def test_one_callback_that_redis_refuses_fails_alone_in_its_batch(redis: Redis) -> None:
    store = RecordingStore(redis, retention_days=1)
    ids = [rid(f"pcall-{n}") for n in range(20)]
    await redis.set(f"rr:recording:{ids[7]}", "not a hash")  # any per-callback Redis error
    now = time.time()
    outcomes = await asyncio.gather(
        *(store.accept(parse_recording(record_xml_params(i), "MA", now)) for i in ids)
    )
    assert outcomes[7] is Outcome.FAILED
    assert [o for n, o in enumerate(outcomes) if n != 7] == [Outcome.QUEUED] * 19
    await store.aclose()


async def test_deeply_nested_json_is_400_without_a_traceback(
    relay: httpx.AsyncClient, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    headers = {"Content-Type": "application/json", **signed_headers("POST", RECORDING, [])}
    for body in (b"[" * 5_000, b'{"a": ' * 5_000):
        response = await relay.post(RECORDING, content=body, headers=headers)
        assert response.status_code == 400
        assert "JSON" in response.json()["error"]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert await redis.dbsize() == 0


async def test_a_callback_for_a_recording_older_than_the_retention_is_acknowledged_and_ignored(
    relay: httpx.AsyncClient, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ended = int(time.time() * 1000) - 31 * DAY_MS  # RECORDING_RETENTION_DAYS is 30
    old = record_xml_params(
        rid("old"), RecordingStartMs=str(ended - 12340), RecordingEndMs=str(ended)
    )
    response = await post_form(relay, RECORDING, old)
    assert response.status_code == 200
    assert await redis.dbsize() == 0
    assert any("before the retention window" in r.getMessage() for r in caplog.records)
    recent = record_xml_params(rid("recent"))
    assert (await post_form(relay, RECORDING, recent)).status_code == 200
    assert await redis.zcard(jobs.QUEUE) == 1


async def test_a_replay_without_times_is_ignored_by_plivos_own_add_time(redis_url: str) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        recording_id = await relay.call(style="api")
        # Plivo added the recording long ago: the relay has forgotten it and must not pay again.
        recording = next(
            r
            for account in relay.sandbox.state.accounts.values()
            for key, r in account.recordings.items()
            if key == recording_id
        )
        recording["add_time"] = "2020-08-05 16:15:15.852059+05:30"
        relay.start_worker()
        result: dict[str, object] = {}

        async def ignored() -> bool:
            result.update((await relay.status(recording_id)).json())
            return result.get("status") == "ignored"

        await eventually(ignored, what="the old recording ignored")
        assert "retention" in str(result["last_error"])
        assert result["events"] == []
        assert (
            relay.sandbox_requests("POST /v1/Account/{auth_id}/Transcription/{recording_id}/") == 0
        )


async def test_a_transcription_signed_by_another_account_is_refused(
    relay: httpx.AsyncClient, redis: Redis
) -> None:
    recording_id = rid("owned-by-main")
    assert (await post_form(relay, RECORDING, record_xml_params(recording_id))).status_code == 200
    params = {"recording_id": recording_id, "transcription": "Hello."}
    response = await post_form(relay, TRANSCRIPTION, params, token=SUB_AUTH_TOKEN)
    assert response.status_code == 403
    assert "another account" in response.json()["error"]
    assert await redis.get(f"rr:recording:{recording_id}:transcription") is None
    assert (await post_form(relay, TRANSCRIPTION, params)).status_code == 200
    stored = json.loads(await redis.get(f"rr:recording:{recording_id}:transcription"))
    assert stored["transcription"] == "Hello."
