"""The callback endpoints, over real HTTP against a real Redis."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
from redis.asyncio import Redis

from service.local.embedded_redis import EmbeddedRedis
from service.storage import jobs
from service.web.app import create_app
from tests.support.plivo import (
    get_query,
    post_form,
    post_json,
    record_xml_params,
    rid,
    signed_headers,
)
from tests.support.servers import serve
from tests.support.settings import AUTH_ID, SUB_AUTH_ID, SUB_AUTH_TOKEN, make_settings

RECORDING = "/plivo/recording"
TRANSCRIPTION = "/plivo/transcription"


async def queued_jobs(redis: Redis) -> list[str]:
    return [job.decode() for job in await redis.zrange(jobs.QUEUE, 0, -1)]


async def state(redis: Redis, recording_id: str) -> dict[str, str]:
    raw = await redis.hgetall(f"rr:recording:{recording_id}")
    return {k.decode(): v.decode() for k, v in raw.items()}


def assert_plivo_ok(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    assert response.text == "<Response></Response>"


async def test_record_xml_callback_is_queued_once(relay: httpx.AsyncClient, redis: Redis) -> None:
    response = await post_form(relay, RECORDING, record_xml_params(rid("rec-xml-1")))
    assert_plivo_ok(response)
    assert await queued_jobs(redis) == [jobs.job_id(jobs.PROCESS_RECORDING, rid("rec-xml-1"))]
    saved = await state(redis, rid("rec-xml-1"))
    assert saved["status"] == "queued"
    event = json.loads(saved["callback"])
    assert event["source"] == "record_xml"
    assert event["duration_ms"] == 12340
    assert event["auth_id"] == AUTH_ID
    assert event["params"]["From"] == "+14155550100"


async def test_api_callback_by_get(relay: httpx.AsyncClient, redis: Redis) -> None:
    params = {
        "api_id": "1",
        "recording_id": rid("rec-api-1"),
        "call_uuid": "call-9",
        "record_url": "https://media.plivo.com/x.mp3",
        "recording_duration": "3",
    }
    assert_plivo_ok(await get_query(relay, RECORDING, params))
    assert await queued_jobs(redis) == [jobs.job_id(jobs.PROCESS_RECORDING, rid("rec-api-1"))]
    assert json.loads((await state(redis, rid("rec-api-1")))["callback"])["duration_ms"] == 3000


async def test_json_callback(relay: httpx.AsyncClient, redis: Redis) -> None:
    response = await post_json(
        relay, RECORDING, {"recording_id": rid("rec-json-1"), "recording_duration_ms": 2500}
    )
    assert_plivo_ok(response)
    assert len(await queued_jobs(redis)) == 1


async def test_multiparty_progress_events_are_logged_not_queued(
    relay: httpx.AsyncClient, redis: Redis
) -> None:
    base = {"RecordingUUID": rid("rec-mpc-1"), "MPCUUID": "m-1", "RecordingURL": "https://m/x.mp3"}
    for event in ("MPCRecordingInitiated", "MPCRecordingPaused", "MPCRecordingResumed"):
        assert_plivo_ok(await post_form(relay, RECORDING, {**base, "EventName": event}))
    assert await queued_jobs(redis) == []
    assert await redis.llen(f"rr:recording:{rid('rec-mpc-1')}:callbacks") == 3
    completed = {**base, "EventName": "MPCRecordingCompleted", "RecordingDuration": "9"}
    assert_plivo_ok(await post_form(relay, RECORDING, completed))
    assert await queued_jobs(redis) == [jobs.job_id(jobs.PROCESS_RECORDING, rid("rec-mpc-1"))]


async def test_action_and_callback_url_and_retries_start_one_pipeline(
    relay: httpx.AsyncClient, redis: Redis
) -> None:
    params = record_xml_params(rid("rec-dup-1"))
    responses = await asyncio.gather(*(post_form(relay, RECORDING, params) for _ in range(20)))
    for response in responses:
        assert_plivo_ok(response)
    assert await queued_jobs(redis) == [jobs.job_id(jobs.PROCESS_RECORDING, rid("rec-dup-1"))]
    # The first is the recording's callback; the 19 duplicates are logged beside it.
    assert await redis.llen(f"rr:recording:{rid('rec-dup-1')}:callbacks") == 19


async def test_subaccount_signature_is_accepted_and_remembered(
    relay: httpx.AsyncClient, redis: Redis
) -> None:
    response = await post_form(
        relay, RECORDING, record_xml_params(rid("rec-sub-1")), token=SUB_AUTH_TOKEN
    )
    assert_plivo_ok(response)
    assert json.loads((await state(redis, rid("rec-sub-1")))["callback"])["auth_id"] == SUB_AUTH_ID


async def test_main_account_signature_header(relay: httpx.AsyncClient, redis: Redis) -> None:
    params = record_xml_params(rid("rec-ma-1"))
    response = await post_form(relay, RECORDING, params, header="X-Plivo-Signature-Ma-V3")
    assert_plivo_ok(response)
    # The subaccount's token is no good in the main-account header.
    response = await post_form(
        relay,
        RECORDING,
        record_xml_params(rid("rec-ma-2")),
        SUB_AUTH_TOKEN,
        "X-Plivo-Signature-Ma-V3",
    )
    assert response.status_code == 403


async def test_url_with_its_own_query_is_signed_whole(
    relay: httpx.AsyncClient, redis: Redis
) -> None:
    path = RECORDING + "?tenant=acme&region=eu"
    params = record_xml_params(rid("rec-q-1"))
    response = await relay.post(path, data=params, headers=signed_headers("POST", path, params))
    assert_plivo_ok(response)
    assert (
        json.loads((await state(redis, rid("rec-q-1")))["callback"])["params"]["tenant"] == "acme"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Plivo-Signature-V3-Nonce": "123"},
        {"X-Plivo-Signature-V3": "bm90LWl0", "X-Plivo-Signature-V3-Nonce": "123"},
    ],
    ids=["none", "nonce-only", "wrong"],
)
async def test_unsigned_or_badly_signed_is_403_and_changes_nothing(
    relay: httpx.AsyncClient, redis: Redis, headers: dict[str, str]
) -> None:
    response = await relay.post(
        RECORDING, data=record_xml_params(rid("rec-bad-1")), headers=headers
    )
    assert response.status_code == 403
    assert "signature" in response.json()["error"]
    assert await redis.dbsize() == 0


async def test_signature_over_other_values_is_refused(
    relay: httpx.AsyncClient, redis: Redis
) -> None:
    params = record_xml_params(rid("rec-tamper-1"))
    headers = signed_headers("POST", RECORDING, params)
    tampered = {**params, "RecordingID": rid("rec-tamper-2")}
    response = await relay.post(RECORDING, data=tampered, headers=headers)
    assert response.status_code == 403
    assert await redis.dbsize() == 0


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"CallUUID": "c-1"}, 400, "missing recording id"),
        ({"RecordingID": rid("r-1"), "RecordingDuration": "abc"}, 400, "RecordingDuration"),
    ],
)
async def test_invalid_callbacks_are_400_and_change_nothing(
    relay: httpx.AsyncClient, redis: Redis, params: dict[str, str], status: int, message: str
) -> None:
    response = await post_form(relay, RECORDING, params)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert await redis.dbsize() == 0


async def test_transport_level_bad_input(relay: httpx.AsyncClient, redis: Redis) -> None:
    cases = [
        ({"Content-Type": "text/plain"}, b"RecordingID=x", 415, "unsupported content type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"RecordingID=%ff", 400, "UTF-8"),
        ({"Content-Type": "application/json"}, b"{not json", 400, "not valid JSON"),
        ({"Content-Type": "application/json"}, b"[1, 2]", 400, "must be an object"),
        ({"Content-Type": "application/json"}, b'{"recording_id": {"a": 1}}', 400, "recording_id"),
    ]
    for headers, body, status, message in cases:
        headers = {**headers, **signed_headers("POST", RECORDING, [])}
        response = await relay.post(RECORDING, content=body, headers=headers)
        assert response.status_code == status, body
        assert message in response.json()["error"]
    assert await redis.dbsize() == 0


async def test_body_over_64_kib_is_413(relay: httpx.AsyncClient, redis: Redis) -> None:
    params = record_xml_params(rid("rec-big-1"), Padding="x" * (64 * 1024))
    response = await post_form(relay, RECORDING, params)
    assert response.status_code == 413
    assert "64 KiB" in response.json()["error"]

    async def chunks():  # no Content-Length: the limit holds while streaming too
        for _ in range(70):
            yield b"x" * 1024

    response = await relay.post(
        RECORDING,
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert await redis.dbsize() == 0


async def test_wrong_method_is_a_json_405(relay: httpx.AsyncClient) -> None:
    response = await relay.get(TRANSCRIPTION)
    assert response.status_code == 405
    assert response.json()["error"]


async def test_transcription_callback_is_stored(relay: httpx.AsyncClient, redis: Redis) -> None:
    params = {
        "recording_id": rid("rec-t-1"),
        "call_uuid": "call-1",
        "transcription": "Hello.",
        "duration": "4",
        "transcription_charge": "0.01",
        "transcription_rate": "0.05",
    }
    assert_plivo_ok(await post_form(relay, TRANSCRIPTION, params))
    stored = json.loads(await redis.get(f"rr:recording:{rid('rec-t-1')}:transcription"))
    assert (stored["transcription"], stored["duration_ms"], stored["charge"]) == (
        "Hello.",
        4000,
        0.01,
    )
    unsigned = await relay.post(TRANSCRIPTION, data=params)
    assert unsigned.status_code == 403
    missing = await post_form(relay, TRANSCRIPTION, {"transcription": "x"})
    assert missing.status_code == 400
    assert "recording_id" in missing.json()["error"]


async def test_signature_checking_can_be_turned_off_with_a_warning(
    redis_url: str, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    app = create_app(make_settings(redis_url, plivo_verify_signatures="false"))
    assert any("PLIVO_VERIFY_SIGNATURES is off" in r.getMessage() for r in caplog.records)
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert_plivo_ok(await client.post(RECORDING, data=record_xml_params(rid("rec-off-1"))))
    assert len(await queued_jobs(redis)) == 1


async def test_health_probes(relay: httpx.AsyncClient) -> None:
    assert (await relay.get("/healthz")).json() == {"status": "ok"}
    ready = await relay.get("/readyz")
    assert (ready.status_code, ready.json()["redis"]) == (200, "ok")


async def test_redis_outage_is_503_then_nothing_is_lost(tmp_path) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    port = server.port
    settings = make_settings(server.url)
    try:
        async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
            server.stop()
            params = record_xml_params(rid("rec-outage-1"))
            response = await post_form(client, RECORDING, params)
            assert response.status_code == 503
            assert response.headers["retry-after"]
            assert "retry" in response.json()["error"]
            assert (await client.get("/readyz")).status_code == 503
            assert (await client.get("/healthz")).status_code == 200

            server.start(port=port)  # Plivo retries once Redis is back
            assert_plivo_ok(await post_form(client, RECORDING, params))
            check = Redis.from_url(server.url)
            assert await queued_jobs(check) == [
                jobs.job_id(jobs.PROCESS_RECORDING, rid("rec-outage-1"))
            ]
            await check.aclose()
    finally:
        server.stop()
