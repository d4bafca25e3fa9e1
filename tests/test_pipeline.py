"""Recordings through the whole relay: sandbox, web process, worker."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.pipeline_env import running_relay
from tests.support.settings import AUTH_ID
from tests.support.waiting import eventually

TRANSCRIBED = ["recording.completed", "recording.transcribed", "recording.archived"]
FAILED_AFTER_DETAILS = ["recording.completed", "recording.failed", "recording.archived"]


def event(status: dict[str, Any], kind: str) -> dict[str, Any]:
    [found] = [e for e in status["events"] if e["type"] == kind]
    return found


@pytest.mark.parametrize(("style", "method"), [("record_xml", "POST"), ("api", "GET")])
async def test_happy_path_costs_four_plivo_requests(
    redis_url: str, style: str, method: str
) -> None:
    async with running_relay(redis_url) as relay:
        recording_id = await relay.call(style=style, method=method)
        status = await relay.settled(recording_id)
        assert status["status"] == "transcribed", status
        assert [e["type"] for e in status["events"]] == TRANSCRIBED
        completed, transcribed, archived = status["events"]
        recording = completed["data"]["recording"]
        assert recording["recording_id"] == recording_id
        assert isinstance(recording["recording_duration_ms"], int)
        assert completed["data"]["callback"]
        transcript = transcribed["data"]["transcription"]
        assert transcript["transcription"]["transcription"].startswith("Hello")
        assert isinstance(transcript["raw"]["transcription"], list)
        assert "Speaker 0:" in transcript["diarized"]["transcription"]
        assert transcript["cost"] == 0.05
        assert {e["data"]["media"]["format"] for e in status["events"]} == {"mp3"}
        names = {o["key"].rsplit("/", 1)[1] for o in archived["data"]["archive"]["objects"]}
        assert {"audio.mp3", "raw.json", "recording.transcribed.json"} <= names
        assert status["plivo_requests"] == 4
        assert relay.sandbox.state.counters.requests == 4
        assert all(
            status["steps"][step] for step in ("accepted_at", "details_at", "transcribed_at")
        )


async def test_polling_finds_the_transcription_when_no_callback_comes(redis_url: str) -> None:
    async with running_relay(redis_url) as relay:
        relay.faults.transcription_callback = False
        recording_id = await relay.call()
        status = await relay.settled(recording_id)
        assert status["status"] == "transcribed", status
        transcribed = event(status, "recording.transcribed")["data"]["transcription"]
        assert transcribed["transcription"]["status"] == "success"
        assert "source" not in transcribed["transcription"]  # from Plivo's API, not the callback
        # details, create, then at least one poll that finds it, and raw and diarized
        assert status["plivo_requests"] >= 5


async def test_transcription_error_becomes_a_failed_event(redis_url: str) -> None:
    async with running_relay(redis_url) as relay:
        relay.faults.transcription_error = "Recording duration too long for transcription"
        recording_id = await relay.call()
        status = await relay.settled(recording_id)
        assert status["status"] == "failed"
        assert [e["type"] for e in status["events"]] == FAILED_AFTER_DETAILS
        failed = event(status, "recording.failed")["data"]
        assert failed["stage"] == "transcription"
        assert failed["reason"] == "Recording duration too long for transcription"
        assert status["last_error"].endswith("too long for transcription")


async def test_unknown_recording_becomes_a_failed_event(redis_url: str) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        recording_id = await relay.call()
        relay.sandbox.state.accounts[AUTH_ID].recordings.clear()  # deleted before we fetched
        relay.start_worker()
        status = await relay.settled(recording_id)
        assert status["status"] == "failed"
        assert [e["type"] for e in status["events"]] == ["recording.failed"]
        failed = status["events"][0]["data"]
        assert failed["stage"] == "fetch_recording"
        assert "not found" in failed["reason"].lower()
        assert failed["recording"] is None
        assert failed["media"] is None  # no audio to link to
        assert failed["callback"]["RecordingID"] == recording_id


async def test_a_rerun_never_pays_for_a_second_transcription(redis_url: str) -> None:
    async with running_relay(redis_url) as relay:
        relay.faults.transcription_callback = False
        relay.faults.transcription_delay = 60  # it stays transcribing
        recording_id = await relay.call()

        async def transcribing() -> bool:  # and the job done with the audio: it ran whole
            status = (await relay.status(recording_id)).json()
            return status["status"] == "transcribing" and bool(status["steps"]["audio_archived_at"])

        await eventually(transcribing, what="the transcription bought, the audio archived")
        # As if a worker died after asking Plivo and the job ran again:
        await relay.worker.pipeline.process(recording_id)  # type: ignore[union-attr]
        route = "POST /v1/Account/{auth_id}/Transcription/{recording_id}/"
        assert relay.sandbox_requests(route) == 1


async def test_customer_auto_transcription_is_used_not_bought(redis_url: str) -> None:
    async with running_relay(redis_url, plivo_auto_transcription="true") as relay:
        recording_id = await relay.call(transcription_url=f"{relay.url}/plivo/transcription")
        status = await relay.settled(recording_id)
        assert status["status"] == "transcribed", status
        route = "POST /v1/Account/{auth_id}/Transcription/{recording_id}/"
        assert relay.sandbox_requests(route) == 0
        assert status["plivo_requests"] == 3  # details, raw, diarized


async def test_deadline_passes(redis_url: str) -> None:
    async with running_relay(redis_url, transcription_deadline="0.5") as relay:
        relay.faults.transcription_callback = False
        relay.faults.transcription_delay = 60
        recording_id = await relay.call()
        status = await relay.settled(recording_id)
        assert status["status"] == "failed"
        assert event(status, "recording.failed")["data"]["stage"] == "transcription"
        assert "deadline" in event(status, "recording.failed")["data"]["reason"]


async def test_plivo_errors_and_rate_limits_are_ridden_out(redis_url: str) -> None:
    async with running_relay(redis_url) as relay:
        relay.faults.error_rate = 0.3
        relay.faults.burst_429 = 3
        relay.faults.retry_after = 0.1
        ids = [await relay.call() for _ in range(5)]
        for recording_id in ids:
            status = await relay.settled(recording_id)
            assert status["status"] == "transcribed", status
            assert [e["type"] for e in status["events"]] == TRANSCRIBED
        assert relay.sandbox.state.counters.injected_errors > 0
        assert relay.sandbox.state.counters.rate_limited == 3


async def test_an_outage_longer_than_a_requests_retries_is_waited_out(redis_url: str) -> None:
    async with running_relay(redis_url, plivo_retries="0") as relay:
        relay.faults.error_rate = 1.0
        recording_id = await relay.call()

        async def retrying() -> bool:
            status = (await relay.status(recording_id)).json()
            return "500" in str(status.get("last_error"))

        await eventually(retrying, what="the outage shown as the last error")
        assert (await relay.status(recording_id)).json()["status"] == "queued"  # not failed
        relay.faults.error_rate = 0.0
        status = await relay.settled(recording_id)
        assert status["status"] == "transcribed", status
        assert [e["type"] for e in status["events"]] == TRANSCRIBED


async def test_an_outage_past_its_window_fails_the_recording(redis_url: str) -> None:
    async with running_relay(redis_url, plivo_retries="0", plivo_outage_window="1") as relay:
        relay.faults.error_rate = 1.0
        recording_id = await relay.call()
        status = await relay.settled(recording_id)
        assert status["status"] == "failed"
        failed = event(status, "recording.failed")["data"]
        assert failed["stage"] == "fetch_recording"
        assert "Internal server error" in failed["reason"]
        assert relay.sandbox.state.counters.injected_errors >= 2  # it was tried again


async def test_status_needs_the_admin_token_and_knows_what_it_saw(redis_url: str) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        unknown = await relay.status("never-seen")
        assert unknown.status_code == 404
        assert "unknown" in unknown.json()["error"]
        response = await relay.http.get(f"{relay.url}/v1/recordings/x")
        assert response.status_code == 401
        wrong = await relay.http.get(
            f"{relay.url}/v1/recordings/x", headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        recording_id = await relay.call()
        status = (await relay.status(recording_id)).json()
        assert status["status"] == "queued"
        assert status["events"] == []
        assert status["plivo_requests"] == 0


async def test_retention_deletes_from_plivo_after_the_final_event(redis_url: str) -> None:
    async with running_relay(redis_url, plivo_delete_after_days="0") as relay:
        recording_id = await relay.call()
        await relay.settled(recording_id)
        account = relay.sandbox.state.accounts[AUTH_ID]

        async def deleted() -> bool:
            status = (await relay.status(recording_id)).json()
            return status["steps"]["deleted_at"] is not None

        await eventually(deleted, what="retention deletion")
        assert recording_id not in account.recordings
        assert recording_id not in account.transcriptions
        assert (await relay.status(recording_id)).json()["plivo_requests"] == 6


async def test_retention_is_off_by_default(redis_url: str) -> None:
    async with running_relay(redis_url) as relay:
        recording_id = await relay.call()
        await relay.settled(recording_id)
        assert recording_id in relay.sandbox.state.accounts[AUTH_ID].recordings
        assert relay.worker is not None
        assert await relay.worker.redis.zcard("arq:queue") == 0  # nothing scheduled to delete
