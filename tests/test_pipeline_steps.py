"""The pipeline's decisions without servers: Plivo answered by httpx's MockTransport, the state
in this test's Redis database, the archive a directory. What a re-run after a crash does is
decided here: it never buys a second transcription."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis

from service.domain.callbacks import parse_recording
from service.domain.media_links import MediaLinks
from service.metrics import Recorder
from service.plivo.client import PlivoClient
from service.settings import Settings
from service.storage.archive import Archive
from service.storage.deliveries import Claimed, Deliveries
from service.storage.keyring import Keyring
from service.storage.metrics import MetricsStore
from service.storage.recordings import RecordingStore, Status
from service.storage.subject_index import SubjectIndex
from service.storage.subscriptions import SubscriptionStore
from tests.support.plivo import record_xml_params, rid
from tests.support.settings import AUTH_ID, AUTH_TOKEN
from workers.pipeline import Context, Pipeline


@dataclass
class Plivo:
    """Plivo's API as a handler: the recording, its audio, and a transcription in progress."""

    purchases: int = 0
    listed: list[str] = field(default_factory=list)  # List Transcriptions shows these

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        recording_id = path.rstrip("/").rsplit("/", 1)[-1]
        if path.endswith(".mp3"):
            return httpx.Response(200, content=b"ID3" + b"\0" * 64)
        if "/Recording/" in path:
            return httpx.Response(200, json=recording(recording_id))
        if request.method == "POST" and "/Transcription/" in path:
            self.purchases += 1
            return httpx.Response(201, json={"message": "transcription in progress"})
        if path.endswith("/Transcription/"):
            objects = [{"recording_id": listed} for listed in self.listed]
            return httpx.Response(200, json={"meta": {"next": None}, "objects": objects})
        return httpx.Response(404, json={"error": "Transcription is in progress"})


def recording(recording_id: str) -> dict[str, object]:
    return {
        "recording_id": recording_id,
        "call_uuid": "c-1",
        "recording_format": "mp3",
        "recording_url": f"https://media.plivo.test/{recording_id}.mp3",
        "recording_duration_ms": "4000.00000",
        "add_time": datetime.now(UTC).isoformat(),
    }


class NoDispatch:
    """No dispatcher: what the fan-out hands back waits in the queue."""

    holder = "test"

    def room(self) -> int:
        return 0

    def submit(self, deliveries: list[Claimed]) -> None:
        assert deliveries == []


@pytest.fixture
async def pipeline(settings: Settings, redis: Redis) -> AsyncIterator[tuple[Pipeline, Plivo]]:
    plivo = Plivo()
    client = PlivoClient(
        settings.plivo_api_url,
        {AUTH_ID: AUTH_TOKEN},
        transport=httpx.MockTransport(plivo),
        retries=0,
    )
    arq = ArqRedis.from_url(settings.redis_url)
    store = RecordingStore(redis, settings.recording_retention_days)
    archive = Archive(settings.archive_url)
    context = Context(
        settings.model_copy(update={"plivo_unknown_request_wait": 1.0}),
        store,
        client,
        arq,
        Deliveries(redis, SubscriptionStore(redis, 10)),
        archive,
        Recorder(MetricsStore(redis)),
        NoDispatch(),
        MediaLinks(settings, Keyring(redis)),
        SubjectIndex(archive, Keyring(redis)),
    )
    yield Pipeline(context), plivo
    await client.aclose()
    await arq.aclose()


async def accepted(pipeline: Pipeline, name: str) -> str:
    recording_id = rid(name)
    params = record_xml_params(recording_id)
    await pipeline.ctx.store.accept(parse_recording(params, AUTH_ID, time.time()))
    return recording_id


async def test_process_fetches_buys_once_copies_the_audio_and_waits_for_the_transcript(
    pipeline: tuple[Pipeline, Plivo],
) -> None:
    steps, plivo = pipeline
    recording_id = await accepted(steps, "first")
    assert await steps.process(recording_id) == "transcribing"
    state = await steps.ctx.store.state(recording_id)
    assert state is not None and state.status == Status.TRANSCRIBING
    assert (
        state.recording is not None and state.recording.document()["recording_duration_ms"] == 4000
    )
    assert [copy.name for copy in state.audio] == ["audio.mp3"]
    assert plivo.purchases == 1
    assert await steps.process(recording_id) == "transcribing"  # run again: nothing bought
    assert plivo.purchases == 1


async def test_a_purchase_marked_but_unconfirmed_is_asked_of_plivo_before_buying_again(
    pipeline: tuple[Pipeline, Plivo],
) -> None:
    steps, plivo = pipeline
    bought, lost = await accepted(steps, "bought"), await accepted(steps, "lost")
    mark = int(time.time() * 1000) - 60_000  # a run died between its mark and Plivo's answer
    for recording_id in (bought, lost):
        await steps.ctx.store.mark_transcription(recording_id, mark)
    plivo.listed = [bought]  # Plivo took the first request; the second never arrived
    assert await steps.process(bought) == "transcribing"
    assert plivo.purchases == 0
    assert await steps.process(lost) == "transcribing"
    assert plivo.purchases == 1
    state = await steps.ctx.store.state(bought)
    assert state is not None and state.transcription_requested_at == mark


async def test_the_events_keep_plivos_recording_with_numbers_as_numbers(
    pipeline: tuple[Pipeline, Plivo], redis: Redis
) -> None:
    steps, _ = pipeline
    recording_id = await accepted(steps, "numbers")
    await steps.process(recording_id)
    state = await steps.ctx.store.state(recording_id)
    assert state is not None
    completed = json.loads(state.events["recording.completed"])
    assert completed["data"]["recording"]["recording_duration_ms"] == 4000
    assert completed["data"]["media"]["format"] == "mp3"
