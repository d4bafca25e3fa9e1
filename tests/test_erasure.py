"""Erasure and retention, as a compliance officer would try them: a recording deleted
everywhere on request, every recording of a person, the retention policy, and legal holds,
through the whole relay (sandbox, web process, worker, archive, a subscriber)."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from redis.asyncio import Redis

from sandbox.app import callback_params
from service.storage import keys
from service.storage.archive import Archive, day_of
from service.storage.keyring import Keyring
from service.storage.subject_index import SubjectIndex
from tests.support.pipeline_env import Relay, running_relay, subscriber, worker_env
from tests.support.plivo import signed_headers
from tests.support.receivers import Receiver
from tests.support.settings import ADMIN_TOKEN, AUTH_ID
from tests.support.waiting import eventually
from workers.reindex import Reindexer

ADMIT = {"delivery_allow_networks": "127.0.0.0/8"}
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NUMBER = "+14155550123"  # the data subject's number, E.164
BUY = "POST /v1/Account/{auth_id}/Transcription/{recording_id}/"


async def api(relay: Relay, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return await relay.http.request(method, f"{relay.url}{path}", headers=AUTH, **kwargs)


async def ended(relay: Relay, erasure_id: str, within: float = 30.0) -> dict[str, Any]:
    """The erasure once it has ended."""
    found: dict[str, Any] = {}

    async def done() -> bool:
        response = await api(relay, "GET", f"/v1/erasures/{erasure_id}")
        found.update(response.json())
        return response.status_code == 200 and found["status"] != "running"

    await eventually(done, within=within, what=f"erasure {erasure_id} ended")
    return found


async def everything_of(archive: Archive, recording_id: str) -> list[str]:
    """Every key of the archive that names the recording (its prefix, its index entries)."""
    return [key for key in await archive.keys("") if recording_id in key]


def erased_events(receiver: Receiver) -> list[dict[str, Any]]:
    bodies = [json.loads(r.body) for r in receiver.got if r.status == 200]
    return [b for b in bodies if b["type"] == "recording.erased"]


async def test_an_erased_recording_is_gone_everywhere_and_subscribers_are_told(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, **ADMIT) as relay:
        receiver = Receiver()
        async with subscriber(relay, receiver):
            recording_id = await relay.call(from_number=NUMBER.lstrip("+"))
            status = await relay.settled(recording_id)
            media = status["events"][0]["data"]["media"]["url"]
            archive = Archive(relay.settings.archive_url)
            assert len(await everything_of(archive, recording_id)) > 10  # its prefix and index
            assert (await relay.http.get(media)).status_code == 200

            made = relay.sandbox.state.accounts[AUTH_ID].recordings[recording_id]
            late = callback_params(dict(made), "record_xml")  # Plivo's retry, after the erasure
            asked = await api(relay, "DELETE", f"/v1/recordings/{recording_id}")
            assert asked.status_code == 202, asked.text
            erasure_id = asked.json()["erasure_id"]
            erasure = await ended(relay, erasure_id)
            assert erasure["status"] == "done", erasure
            assert (erasure["found"], erasure["erased"], erasure["failed"]) == (1, 1, 0)

            # The archive holds nothing of it, Plivo neither, and its link answers 410.
            assert await everything_of(archive, recording_id) == []
            account = relay.sandbox.state.accounts[AUTH_ID]
            assert recording_id not in account.recordings
            assert recording_id not in account.transcriptions
            assert (await relay.http.get(media)).status_code == 410
            now = (await relay.status(recording_id)).json()
            assert now["status"] == "erased"
            assert now["erasure"] == {"id": erasure_id, "reason": "request"}

            async def told() -> bool:
                return len(erased_events(receiver)) == 1

            await eventually(told, what="the subscriber told of the erasure")
            [event] = erased_events(receiver)
            assert event["data"]["recording_id"] == recording_id
            assert event["data"]["reason"] == "request"
            assert event["data"]["erasure_id"] == erasure_id
            assert set(event["data"]["erased"]) == {"relay", "archive", "plivo"}
            assert "4155550123" not in json.dumps(event)

            # Erasing again is the same erasure; a late callback brings nothing back.
            again = await api(relay, "DELETE", f"/v1/recordings/{recording_id}")
            assert again.status_code == 202
            assert again.json()["erasure_id"] == erasure_id
            path = "/plivo/recording"
            replayed = await relay.http.post(
                f"{relay.url}{path}",
                data=late,
                headers=signed_headers("POST", path, late, base=relay.url),
            )
            assert replayed.status_code == 200, replayed.text
            assert (await relay.status(recording_id)).json()["status"] == "erased"
            assert await everything_of(archive, recording_id) == []

            # The audit record says who, when and what, and holds ids only.
            audit = await archive.get(f"audit/erasures/{erasure_id}.json")
            assert audit is not None
            record = json.loads(audit)
            assert record["erasure"]["requested_by"].startswith("token:")
            [outcome] = record["recordings"]
            assert outcome["recording_id"] == recording_id
            assert outcome["outcome"] == "erased"
            assert outcome["plivo"] == "deleted"
            assert "4155550123" not in audit.decode()


async def test_a_recording_erased_in_flight_buys_nothing_and_sends_nothing_but_its_erasure(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, worker=False, **ADMIT) as relay:
        receiver = Receiver()
        async with subscriber(relay, receiver):
            recording_id = await relay.call()  # queued: no worker has taken it
            asked = await api(relay, "DELETE", f"/v1/recordings/{recording_id}")
            assert asked.status_code == 202, asked.text
            relay.start_worker()
            erasure = await ended(relay, asked.json()["erasure_id"])
            assert erasure["status"] == "done", erasure

            async def told() -> bool:
                return len(erased_events(receiver)) == 1

            await eventually(told, what="the subscriber told of the erasure")
            assert [json.loads(r.body)["type"] for r in receiver.got] == ["recording.erased"]
            assert relay.sandbox_requests(BUY) == 0
            archive = Archive(relay.settings.archive_url)
            assert await everything_of(archive, recording_id) == []


async def test_erasure_by_phone_number_finds_each_recording_of_it_in_either_form(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, **ADMIT) as relay:
        calling = await relay.call(from_number=NUMBER.lstrip("+"))  # as Plivo writes it
        called = await relay.call(to_number=NUMBER)
        held = await relay.call(from_number=NUMBER.lstrip("+"))
        other = await relay.call(from_number="14155550999", to_number="14155550998")
        for recording_id in (calling, called, held, other):
            assert (await relay.settled(recording_id))["status"] == "transcribed"
        archive = Archive(relay.settings.archive_url)
        index = [key for key in await archive.keys("index")]
        assert index and not [key for key in index if "4155550123" in key]
        hold = await api(relay, "PUT", f"/v1/recordings/{held}/hold", json={"reason": "case 7"})
        assert hold.status_code == 200, hold.text

        asked = await api(relay, "POST", "/v1/erasures", json={"phone_number": NUMBER})
        assert asked.status_code == 202, asked.text
        erasure = await ended(relay, asked.json()["id"])
        assert erasure["status"] == "done", erasure
        assert (erasure["found"], erasure["erased"], erasure["held"]) == (3, 2, 1)
        outcomes = {o["recording_id"]: o["outcome"] for o in erasure["recordings"]}
        assert outcomes == {calling: "erased", called: "erased", held: "held"}
        for gone in (calling, called):
            assert await everything_of(archive, gone) == []
            assert (await relay.status(gone)).json()["status"] == "erased"
        for kept in (held, other):
            assert len(await everything_of(archive, kept)) > 10
            assert (await relay.status(kept)).json()["status"] == "transcribed"
        audit = await archive.get(f"audit/erasures/{erasure['id']}.json")
        assert audit is not None and "4155550123" not in audit.decode()

        # By call: the other recording's call.
        call_uuid = (await relay.status(other)).json()["events"][0]["data"]["call_uuid"]
        asked = await api(relay, "POST", "/v1/erasures", json={"call_uuid": call_uuid})
        erasure = await ended(relay, asked.json()["id"])
        assert (erasure["found"], erasure["erased"]) == (1, 1)
        assert await everything_of(archive, other) == []


async def test_a_held_recording_is_refused_erasure_until_its_hold_is_released(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, **ADMIT) as relay:
        recording_id = await relay.call()
        await relay.settled(recording_id)
        path = f"/v1/recordings/{recording_id}"
        placed = await api(relay, "PUT", f"{path}/hold", json={"reason": "litigation 2026-114"})
        assert placed.status_code == 200, placed.text
        listed = (await api(relay, "GET", "/v1/holds")).json()["data"]
        assert [h["recording_id"] for h in listed] == [recording_id]
        refused = await api(relay, "DELETE", path)
        assert refused.status_code == 409
        assert "litigation 2026-114" in refused.json()["error"]
        assert (await relay.status(recording_id)).json()["status"] == "transcribed"

        assert (await api(relay, "DELETE", f"{path}/hold")).status_code == 204
        assert (await api(relay, "DELETE", f"{path}/hold")).status_code == 404
        asked = await api(relay, "DELETE", path)
        assert asked.status_code == 202
        await ended(relay, asked.json()["erasure_id"])
        gone = await api(relay, "PUT", f"{path}/hold", json={"reason": "too late"})
        assert gone.status_code == 409
        archive = Archive(relay.settings.archive_url)
        trail = await archive.keys(f"audit/holds/{recording_id}")
        assert [key.rsplit("-", 1)[1] for key in trail] == ["placed.json", "released.json"]


async def test_bad_erasure_requests_are_refused_by_name_and_change_nothing(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, worker=False) as relay:
        for body, named in [
            ({"phone_number": "4155550123"}, "phone_number"),
            ({"phone_number": NUMBER, "call_uuid": "abc-12345678"}, "exactly one"),
            ({}, "exactly one"),
            ({"email": "a@example.com"}, "email"),
        ]:
            refused = await api(relay, "POST", "/v1/erasures", json=body)
            assert refused.status_code == 422, (body, refused.text)
            assert named in refused.json()["error"]
        unknown = "00000000-0000-4000-8000-000000000000"
        assert (await api(relay, "DELETE", f"/v1/recordings/{unknown}")).status_code == 404
        assert (await api(relay, "DELETE", "/v1/recordings/not-an-id")).status_code == 404
        assert (await api(relay, "GET", "/v1/erasures/er_nope")).status_code == 404
        hold = await api(relay, "PUT", f"/v1/recordings/{unknown}/hold", json={"reason": "x"})
        assert hold.status_code == 404
        blank = await api(relay, "PUT", f"/v1/recordings/{unknown}/hold", json={"reason": ""})
        assert blank.status_code == 422
        assert (await api(relay, "GET", "/v1/erasures")).json()["data"] == []
        no_auth = await relay.http.delete(f"{relay.url}/v1/recordings/{unknown}")
        assert no_auth.status_code == 401


async def test_retention_erases_what_is_older_and_keeps_what_is_held(
    redis_url: str, redis: Redis
) -> None:
    async with running_relay(redis_url, archive_retention_days=400, **ADMIT) as relay:
        receiver = Receiver()
        async with subscriber(relay, receiver):
            recent = await relay.call()
            await relay.settled(recent)
            archive = Archive(relay.settings.archive_url)
            index = SubjectIndex(archive, Keyring(redis))
            # Two recordings the relay archived 500 days ago, as it would have.
            old_day = (datetime.now(UTC) - timedelta(days=500)).strftime("%Y/%m/%d")
            old = []
            for _ in range(2):
                made = relay.sandbox.state.new_recording(AUTH_ID, 30_000)
                recording_id = str(made["recording_id"])
                await archive.put(f"recordings/{old_day}/{recording_id}/state.json", b"{}")
                await archive.put(f"recordings/{old_day}/{recording_id}/audio.mp3", b"mp3")
                await index.write(recording_id, old_day, AUTH_ID, {"14155550100"}, None)
                old.append(recording_id)
            expired, kept = old
            placed = await api(relay, "PUT", f"/v1/recordings/{kept}/hold", json={"reason": "x"})
            assert placed.status_code == 200, placed.text
            await redis.delete(keys.RETENTION_LOCK)  # today's sweep may have found nothing yet
            assert relay.worker is not None
            erasure = await relay.worker.eraser.sweep_retention()
            assert erasure is not None
            assert await relay.worker.eraser.sweep_retention() is None  # one a day
            ended_erasure = await ended(relay, erasure.id)
            assert ended_erasure["reason"] == "retention"
            assert (ended_erasure["erased"], ended_erasure["held"]) == (1, 1)
            assert await everything_of(archive, expired) == []
            assert len(await archive.keys(f"recordings/{old_day}/{kept}")) == 2
            assert len(await everything_of(archive, recent)) > 10
            assert expired not in relay.sandbox.state.accounts[AUTH_ID].recordings

            async def told() -> bool:
                return [e["data"]["recording_id"] for e in erased_events(receiver)] == [expired]

            await eventually(told, what="the subscriber told of the retention")
            assert erased_events(receiver)[0]["data"]["reason"] == "retention"


async def test_reindex_indexes_what_the_archive_held_before(redis_url: str, redis: Redis) -> None:
    async with running_relay(redis_url, **ADMIT) as relay:
        ids = [await relay.call(from_number=NUMBER.lstrip("+")) for _ in range(2)]
        for recording_id in ids:
            await relay.settled(recording_id)
        archive = Archive(relay.settings.archive_url)
        await archive.delete(await archive.keys("index"))  # archived before the index
        asked = await api(relay, "POST", "/v1/erasures", json={"phone_number": NUMBER})
        assert (await ended(relay, asked.json()["id"]))["found"] == 0

        command = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers",
            "reindex",
            env=worker_env(relay),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(command.communicate(), timeout=60)
        assert command.returncode == 0, err.decode()
        assert "2 recordings looked at, 2 indexed" in out.decode()
        assert await redis.get(keys.REINDEX) is None  # whole: nothing left to resume
        asked = await api(relay, "POST", "/v1/erasures", json={"phone_number": NUMBER})
        erasure = await ended(relay, asked.json()["id"])
        assert (erasure["found"], erasure["erased"]) == (2, 2)
        day = day_of((await relay.status(ids[0])).json()["steps"]["accepted_at"] or 0)
        assert await archive.keys(f"recordings/{day}/{ids[0]}") == []


async def test_reindex_cut_short_resumes_after_the_last_recording_it_did(
    redis_url: str, redis: Redis
) -> None:
    async with running_relay(redis_url, **ADMIT) as relay:
        prefixes = []
        for _ in range(3):
            recording_id = await relay.call()
            accepted = (await relay.settled(recording_id))["steps"]["accepted_at"]
            prefixes.append(f"recordings/{day_of(accepted)}/{recording_id}")
        prefixes.sort()  # the order the archive is walked in
        ids = [prefix.rsplit("/", 1)[1] for prefix in prefixes]
        archive = Archive(relay.settings.archive_url)
        await archive.delete(await archive.keys("index"))
        await redis.set(keys.REINDEX, prefixes[0])  # a run got this far
        reindexer = Reindexer(archive, redis, SubjectIndex(archive, Keyring(redis)))
        seen: list[int] = []
        assert await reindexer.run(lambda done, _: seen.append(done)) == (2, 2)
        indexed = {
            key.rsplit("/", 1)[1].removesuffix(".json")
            for key in await archive.keys("index/recordings")
        }
        assert indexed == set(ids[1:])
        assert seen == [1, 2]
