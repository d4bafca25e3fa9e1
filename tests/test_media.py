"""Signed media links: a subscriber fetches the audio with the link in its event, never with
Plivo's credentials; from the archive once it is there (the file store served by the relay, a
bucket by a redirect to a signed URL of the store), proxied from Plivo before that."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from redis.asyncio import Redis

from sandbox.app import media_bytes
from service.domain.events import Event, EventData, Media, make_event, with_media
from service.domain.media_links import MediaLinks
from service.storage.archive import Archive, day_of
from service.storage.keyring import Keyring
from tests.support.archive_stores import s3_archive
from tests.support.pipeline_env import Relay, running_relay, start_worker, worker_env
from tests.support.plivo import rid
from tests.support.settings import AUTH_ID, AUTH_TOKEN
from tests.support.waiting import eventually


async def link_of(relay: Relay, recording_id: str) -> str:
    """The media link in the recording's first event."""
    status = (await relay.status(recording_id)).json()
    return str(status["events"][0]["data"]["media"]["url"])


def with_query(link: str, **changes: str) -> str:
    parts = urlsplit(link)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())).geturl()


async def test_a_link_serves_the_archived_audio_whole_or_in_ranges_and_nothing_unsigned(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, archive_original="true") as relay:
        recording_id = await relay.call()
        assert (await relay.settled(recording_id))["status"] == "transcribed"
        link = await link_of(relay, recording_id)
        size = relay.faults.media_bytes
        audio = media_bytes(recording_id, "denoised", size)

        whole = await relay.http.get(link)  # no admin token, no Plivo credentials
        assert whole.status_code == 200 and whole.content == audio
        assert whole.headers["content-type"] == "audio/mpeg"
        assert whole.headers["content-length"] == str(size)
        part = await relay.http.get(link, headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206 and part.content == audio[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{size}"
        original = await relay.http.get(link + "&type=original")
        assert original.content == media_bytes(recording_id, "original", size)

        signature = parse_qs(urlsplit(link).query)["signature"][0]
        tampered = signature[:-1] + ("A" if signature[-1] != "A" else "B")
        later = str(int(parse_qs(urlsplit(link).query)["expires"][0]) + 3600)
        links = await MediaLinks(relay.settings, Keyring(Redis.from_url(redis_url))).ready()
        expired = links.link(recording_id, "mp3", now=time.time() - 86_400 - 5).url
        other = await relay.call()
        refused = {
            "tampered signature": with_query(link, signature=tampered),
            "extended expiry": with_query(link, expires=later),
            "expired": expired,
            "no signature": link.split("?")[0],
            "another recording's signature": link.replace(recording_id, other),
        }
        for what, url in refused.items():
            answer = await relay.http.get(url)
            assert answer.status_code == 403, what
            assert "media link" in answer.json()["error"], what
        assert "expired" in (await relay.http.get(expired)).json()["error"]

        unknown = await relay.http.get(links.link(rid("never-recorded"), "mp3").url)
        assert unknown.status_code == 404 and "unknown" in unknown.json()["error"]
        wav = await relay.http.get(links.link(recording_id, "wav").url)
        assert wav.status_code == 404
        bad_type = await relay.http.get(link + "&type=stereo")
        assert bad_type.status_code == 400 and "type" in bad_type.json()["error"]


async def test_on_a_bucket_a_link_redirects_to_a_short_lived_url_of_the_store(
    redis_url: str, monkeypatch
) -> None:
    with s3_archive(monkeypatch) as (archive_url, _):
        async with running_relay(redis_url, archive_url=archive_url) as relay:
            recording_id = await relay.call()
            assert (await relay.settled(recording_id))["status"] == "transcribed"
            link = await link_of(relay, recording_id)
            answer = await relay.http.get(link)
            assert answer.status_code == 307
            location = answer.headers["location"]
            assert location.startswith("http://127.0.0.1:") and "X-Amz-Signature" in location
            assert "X-Amz-Expires=300" in location
            assert AUTH_TOKEN not in location
            fetched = await relay.http.get(location)
            assert fetched.content == media_bytes(
                recording_id, "denoised", relay.faults.media_bytes
            )


async def test_a_link_is_served_from_plivo_until_archived_and_from_the_archive_after_deletion(
    redis_url: str, tmp_path: Path
) -> None:
    archive_url = f"file://{tmp_path}/archive"
    async with running_relay(redis_url, worker=False, archive_url=archive_url) as relay:
        recording_id = await relay.call()
        status = (await relay.status(recording_id)).json()
        prefix = f"recordings/{day_of(status['steps']['accepted_at'])}/{recording_id}"
        # The archive cannot take the audio for a while: a directory is where it would go.
        blocker = tmp_path / "archive" / prefix / "audio.mp3"
        blocker.mkdir(parents=True)
        relay.start_worker()

        async def waiting_for_the_archive() -> bool:
            status = (await relay.status(recording_id)).json()
            return "audio.mp3" in str(status["last_error"]) and bool(status["events"])

        await eventually(waiting_for_the_archive, what="the audio waiting for the archive")
        link = await link_of(relay, recording_id)
        size = relay.faults.media_bytes
        audio = media_bytes(recording_id, "denoised", size)
        served_before = relay.sandbox.state.counters.media
        proxied = await relay.http.get(link)
        assert proxied.status_code == 200 and proxied.content == audio
        assert proxied.headers["content-type"] == "audio/mpeg"
        part = await relay.http.get(link, headers={"Range": "bytes=-100"})
        assert part.status_code == 206 and part.content == audio[-100:]
        assert part.headers["content-range"] == f"bytes {size - 100}-{size - 1}/{size}"
        assert relay.sandbox.state.counters.media >= served_before + 2  # from Plivo, then

        blocker.rmdir()
        status = await relay.settled(recording_id, within=30)
        assert status["status"] == "transcribed"
        assert (tmp_path / "archive" / prefix / "audio.mp3").read_bytes() == audio

        # Deleted from Plivo (the retention policy): the link still works, from the archive.
        assert relay.worker is not None
        assert await relay.worker.pipeline.delete(recording_id) == "deleted"
        assert recording_id not in relay.sandbox.state.accounts[AUTH_ID].recordings
        served = relay.sandbox.state.counters.media
        again = await relay.http.get(link, headers={"Range": "bytes=0-9"})
        assert again.status_code == 206 and again.content == audio[:10]
        assert relay.sandbox.state.counters.media == served


@pytest.mark.slow
async def test_a_worker_killed_mid_download_leaves_a_whole_verified_copy(
    redis_url: str, tmp_path: Path
) -> None:
    archive_url = f"file://{tmp_path}/archive"
    async with running_relay(redis_url, worker=False, archive_url=archive_url) as relay:
        relay.faults.media_bytes = 3 * 1024 * 1024
        relay.faults.media_chunk_delay = 0.5  # 12 chunks: six seconds of download
        first = await start_worker(worker_env(relay))
        recording_id = await relay.call()

        async def downloading() -> bool:
            return relay.sandbox.state.counters.media > 0

        await eventually(downloading, what="the audio's download begun")
        first.send_signal(signal.SIGKILL)
        await first.wait()
        relay.faults.media_chunk_delay = 0
        second = await start_worker(worker_env(relay))
        try:
            status = await relay.settled(recording_id, within=40)
        finally:
            second.send_signal(signal.SIGTERM)
            await second.wait()
        assert status["status"] == "transcribed", status
        audio = media_bytes(recording_id, "denoised", relay.faults.media_bytes)
        prefix = f"recordings/{day_of(status['steps']['accepted_at'])}/{recording_id}"
        assert await Archive(archive_url).get(f"{prefix}/audio.mp3") == audio
        # The download cut short left nothing behind (the file store stages uploads).
        assert not [p.name for p in (tmp_path / "archive" / prefix).iterdir() if "#" in p.name]
        [copy] = status["audio"]
        assert copy["size"] == len(audio)
        route = "POST /v1/Account/{auth_id}/Transcription/{recording_id}/"
        assert relay.sandbox_requests(route) == 1  # the re-run did not buy it again


def test_a_fresh_link_replaces_only_the_event_s_own_media_field() -> None:
    links_at = {"url": "https://relay/media/x.mp3?expires=1&signature=s", "expires_at": "old"}
    recording = {"recording_id": "x", "media": {**links_at, "format": "mp3"}}  # a lookalike
    data = EventData(
        recording_id="x",
        call_uuid=None,
        recording=recording,
        callback={},
        media=Media(format="mp3", **links_at),
    )
    body = make_event("recording.completed", data).model_dump_json()
    fresh = Media(
        url="https://relay/media/x.mp3?expires=2&signature=t", format="mp3", expires_at="new"
    )
    refreshed = Event.model_validate_json(with_media(body, lambda current: fresh))
    assert refreshed.data.media == fresh
    assert refreshed.data.recording == recording  # the lookalike inside is untouched
    assert json.loads(with_media(body, lambda current: current)) == json.loads(body)
    without = make_event("recording.failed", data.model_copy(update={"media": None}))
    assert with_media(without.model_dump_json(), lambda current: fresh) == without.model_dump_json()
    assert with_media('{"n": 1}', lambda current: fresh) == '{"n": 1}'
