"""The archive keeps every recording's history in the customer's object store (a directory, or
a bucket on a real S3-compatible server); Redis keeps only what de-duplication and look-ups
need once a recording is final; the status, replay and recover read the archive."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis

from sandbox.app import media_bytes
from service.storage.archive import Archive, day_of
from tests.support.archive_stores import s3_archive
from tests.support.pipeline_env import Relay, running_relay
from tests.support.receivers import Receiver
from tests.support.servers import serve
from tests.support.settings import ADMIN_TOKEN
from tests.support.waiting import eventually

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DOCUMENTS = {
    "audio.mp3",
    "callback.json",
    "recording.json",
    "transcription.json",
    "raw.json",
    "diarized.json",
    "transcript.json",
    "transcript.txt",
    "transcript.vtt",
    "events/recording.completed.json",
    "events/recording.transcribed.json",
    "events/recording.archived.json",
}
# Written once the recording is final, after `recording.archived` lists the rest: its state,
# and a few seconds after each webhook attempt, the attempts.
AFTER = {"state.json", "attempts.json"}
KINDS = ["recording.completed", "recording.transcribed", "recording.archived"]


def without_media(body: bytes) -> dict[str, Any]:
    """An event without its media link (each attempt carries a fresh one)."""
    event: dict[str, Any] = json.loads(body)
    assert event["data"]["media"]["url"].startswith("http://127.0.0.1:")
    del event["data"]["media"]
    return event


@asynccontextmanager
async def relay_with_subscriber(
    redis_url: str, archive_url: str, receiver: Receiver
) -> AsyncIterator[Relay]:
    admit = {"delivery_allow_networks": "127.0.0.0/8", "archive_url": archive_url}
    async with running_relay(redis_url, **admit) as relay, serve(receiver.app()) as url:
        await relay.subscribe(f"{url}/hook")
        yield relay


async def delivered(receiver: Receiver, count: int) -> None:
    async def enough() -> bool:
        return len([r for r in receiver.got if r.status == 200]) >= count

    await eventually(enough, what=f"{count} webhooks delivered")


@pytest.mark.parametrize("store", ["file", "s3"])
async def test_a_recording_is_archived_whole_and_redis_keeps_only_a_little(
    redis_url: str, redis: Redis, tmp_path, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    with ExitStack() as stack:
        if store == "s3":
            archive_url, _ = stack.enter_context(s3_archive(monkeypatch))
        else:
            archive_url = f"file://{tmp_path}/archive"
        receiver = Receiver()
        async with relay_with_subscriber(redis_url, archive_url, receiver) as relay:
            # On S3, audio large enough for a multipart upload (8 MiB parts).
            relay.faults.media_bytes = 20 * 1024 * 1024 if store == "s3" else 300_000
            recording_id = await relay.call()
            status = await relay.settled(recording_id)
            assert status["status"] == "transcribed" and status["archived"] is True
            await delivered(receiver, 3)

            archive = Archive(archive_url)
            day = day_of(status["steps"]["accepted_at"])
            prefix = f"recordings/{day}/{recording_id}"
            keys = {key.removeprefix(prefix + "/") for key in await archive.keys(prefix)}
            assert keys - {"attempts.json"} == DOCUMENTS | {"state.json"}
            # Each event as it was emitted; what was sent differs only in a fresh media link.
            for got in receiver.got:
                kind = json.loads(got.body)["type"]
                kept = await archive.get(f"{prefix}/events/{kind}.json") or b""
                assert without_media(kept) == without_media(got.body)
            # `recording.archived` lists every other object, each as the store holds it.
            [announced] = [json.loads(r.body) for r in receiver.got if b"archived" in r.body[:40]]
            assert announced["data"]["archive"]["url"] == f"{archive_url}/{prefix}/"
            objects = announced["data"]["archive"]["objects"]
            assert {o["key"] for o in objects} == {
                f"{prefix}/{name}" for name in DOCUMENTS - {"events/recording.archived.json"}
            }
            for listed in objects:
                stored = await archive.get(listed["key"]) or b""
                assert listed["size"] == len(stored) > 0
                assert listed["sha256"] == hashlib.sha256(stored).hexdigest()
            # The audio, byte for byte as Plivo serves it (behind Basic Auth), size and checksum
            # recorded.
            audio = await archive.get(f"{prefix}/audio.mp3")
            assert audio == media_bytes(recording_id, "denoised", relay.faults.media_bytes)
            [copy] = status["audio"]
            assert copy == {
                "key": f"{prefix}/audio.mp3",
                "size": len(audio),
                "sha256": hashlib.sha256(audio).hexdigest(),
            }
            recording = json.loads(await archive.get(f"{prefix}/recording.json") or b"")
            assert recording["recording_id"] == recording_id
            assert isinstance(recording["recording_duration_ms"], (int, float))

            # Redis forgot the payloads: no Recording object, callback, bodies or transcript.
            state = await redis.hgetall(f"rr:recording:{recording_id}")
            fields = {k.decode() for k in state}
            assert not fields & {"recording", "callback"}
            assert not [f for f in fields if f.startswith("event:")]
            assert not await redis.exists(f"rr:recording:{recording_id}:transcription")

            # Delivered webhooks leave only their attempts, which go to the archive.
            async def all_archived() -> bool:
                logged = await archive.get(f"{prefix}/attempts.json")
                return logged is not None and len(json.loads(logged)) == 3

            await eventually(all_archived, what="every attempt in the archive")
            assert len((await relay.status(recording_id)).json()["attempts"]) == 3
            for pattern in ("rr:body:*", "rr:pending:*", "rr:queue:*", "rr:archive:attempts"):
                assert await redis.keys(pattern) == [], pattern
            assert set(fields) <= {"status", "accepted_at", "archived_at", "call_uuid"}

            # ... and the status endpoint still shows everything, from the archive.
            assert [e["type"] for e in status["events"]] == KINDS
            assert status["callback"]["recording_id"] == recording_id

            # A replay sends the archived events again, under the same webhook-ids, each with
            # a link that serves the audio.
            replayed = await relay.http.post(
                f"{relay.url}/v1/recordings/{recording_id}/replay", headers=ADMIN
            )
            assert replayed.json() == {"queued": 3}
            await delivered(receiver, 6)
            first, again = receiver.got[:3], receiver.got[3:]
            assert [without_media(r.body) for r in again] == [without_media(r.body) for r in first]
            ids = [r.headers["webhook-id"] for r in again]
            assert ids == [r.headers["webhook-id"] for r in first]
            link = json.loads(again[-1].body)["data"]["media"]["url"]
            served = await relay.http.get(link, follow_redirects=True)
            assert served.status_code == 200 and served.content == audio


@pytest.mark.slow  # waits seconds on the relay's own timers
async def test_an_archive_failing_for_a_while_makes_the_work_wait_and_loses_nothing(
    redis_url: str, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    with s3_archive(monkeypatch) as (archive_url, server):
        receiver = Receiver()
        async with relay_with_subscriber(redis_url, archive_url, receiver) as relay:
            server.stop()  # the store answers nothing
            recording_id = await relay.call()

            async def waiting() -> bool:
                status = (await relay.status(recording_id)).json()
                return "archive: cannot write" in str(status.get("last_error"))

            await eventually(waiting, within=30, what="the archive failure shown")
            ready = await relay.http.get(f"{relay.url}/readyz")
            assert ready.status_code == 503 and ready.json()["archive"] == "unreachable"
            status = (await relay.status(recording_id)).json()
            assert status["status"] == "queued" and status["archived"] is False
            assert receiver.got == []  # nothing is announced before it is kept
            server.start()
            assert (await relay.http.get(f"{relay.url}/readyz")).json()["archive"] == "ok"
            status = await relay.settled(recording_id, within=60)
            assert status["status"] == "transcribed" and status["archived"] is True
            await delivered(receiver, 3)
            route = "POST /v1/Account/{auth_id}/Transcription/{recording_id}/"
            assert relay.sandbox_requests(route) == 1
            prefix = f"recordings/{day_of(status['steps']['accepted_at'])}/{recording_id}"
            keys = await Archive(archive_url).keys(prefix)
            assert {k.removeprefix(prefix + "/") for k in keys} - AFTER == DOCUMENTS


async def test_recover_after_the_recording_is_final_reads_the_archive(
    redis_url: str, redis: Redis, tmp_path
) -> None:
    receiver = Receiver(answers=[500])
    archive_url = f"file://{tmp_path}/archive"
    settings = {"delivery_retry_schedule": "0"}  # one attempt, then failed
    admit = {"delivery_allow_networks": "127.0.0.0/8", "archive_url": archive_url}
    async with running_relay(redis_url, **admit, **settings) as relay, serve(receiver.app()) as url:
        created = await relay.subscribe(f"{url}/hook")
        recording_id = await relay.call()
        assert (await relay.settled(recording_id))["archived"] is True

        async def all_failed() -> bool:
            status = (await relay.status(recording_id)).json()
            return [a["status_code"] for a in status["attempts"]] == [500, 500, 500]

        await eventually(all_failed, what="every webhook failed")
        subscription_id = created["id"]
        # Listed for recover; their bodies are read from the archive then.
        assert await redis.zcard(f"rr:failed:{subscription_id}") == 3
        assert await redis.keys("rr:body:*") == []
        receiver.answers = [200]
        recovered = await relay.http.post(
            f"{relay.url}/v1/subscriptions/{created['id']}/recover",
            json={"since": "2000-01-01T00:00:00Z"},
            headers=ADMIN,
        )
        assert recovered.json() == {"queued": 3}
        await delivered(receiver, 3)
        first = [without_media(r.body) for r in receiver.got if r.status == 500]
        assert [without_media(r.body) for r in receiver.got if r.status == 200] == first


@pytest.mark.parametrize("has_original", [True, False])
async def test_the_pre_denoised_recording_is_archived_when_asked_and_missing_is_no_error(
    redis_url: str, tmp_path, has_original: bool
) -> None:
    archive_url = f"file://{tmp_path}/archive"
    async with running_relay(redis_url, archive_url=archive_url, archive_original="true") as relay:
        relay.faults.original_audio = has_original
        recording_id = await relay.call()
        status = await relay.settled(recording_id)
        assert status["status"] == "transcribed", status
        names = [copy["key"].rsplit("/", 1)[1] for copy in status["audio"]]
        archive = Archive(archive_url)
        if has_original:
            assert names == ["audio.mp3", "audio.original.mp3"]
            original = await archive.get(status["audio"][1]["key"])
            size = relay.faults.media_bytes
            assert original == media_bytes(recording_id, "original", size)
            assert original != await archive.get(status["audio"][0]["key"])
        else:
            assert names == ["audio.mp3"]


async def test_plivo_keeps_a_recording_the_archive_has_no_verified_copy_of(
    redis_url: str, tmp_path
) -> None:
    archive_url = f"file://{tmp_path}/archive"
    async with running_relay(redis_url, archive_url=archive_url) as relay:
        recording_id = await relay.call()
        [copy] = (await relay.settled(recording_id))["audio"]
        stored = tmp_path / "archive" / copy["key"]
        stored.write_bytes(b"cut short")  # the archive's copy is no longer what was copied
        assert relay.worker is not None
        assert await relay.worker.pipeline.delete(recording_id) == "kept"
        status = (await relay.status(recording_id)).json()
        assert "not deleted from Plivo" in status["last_error"]
        assert status["steps"]["deleted_at"] is None
        route = "DELETE /v1/Account/{auth_id}/Recording/{recording_id}/"
        assert relay.sandbox_requests(route) == 0
        stored.write_bytes(media_bytes(recording_id, "denoised", relay.faults.media_bytes))
        assert await relay.worker.pipeline.delete(recording_id) == "deleted"
        assert relay.sandbox_requests(route) == 1
