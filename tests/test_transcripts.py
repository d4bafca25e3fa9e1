"""Transcripts through the whole relay: redacted before the first byte is archived or sent, kept
in the forms people use, linked from the event, and rebuilt for what the archive already holds.

The sandbox's default call has two speakers, word timings, a card number spoken digit by digit
(4111 1111 1111 1111) and an email address."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.domain.redaction import Kind, Redactor
from service.storage.archive import Archive
from tests.support.pipeline_env import Relay, running_relay, subscriber
from tests.support.receivers import Receiver
from tests.support.waiting import eventually
from workers.retranscribe import Retranscriber

SPOKEN_CARD = "four one one one one one one one one one one one one one one one"
EMAIL = "jane.doe@example.com"
ADMIT = {"delivery_allow_networks": "127.0.0.0/8"}


def archived(relay: Relay) -> dict[str, bytes]:
    """Every object the relay's archive holds, by key."""
    root = Path(relay.settings.archive_url.removeprefix("file://"))
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def strings(value: Any) -> list[str]:
    """Every string in a JSON value, in order (a recognizer's words one by one)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    return []


def holds(data: bytes, *said: str) -> bool:
    """Whether any of `said` is in `data`: in its text, or in its JSON's strings read in order
    (words split one an object), digits with or without their spaces."""
    text = data.decode(errors="replace")
    try:
        words = " ".join(w for w in strings(json.loads(text)) if w)
    except ValueError:
        words = ""
    return any(s in text or s in words or s.replace(" ", "") in text for s in said)


async def transcribed(relay: Relay, receiver: Receiver) -> dict[str, Any]:
    recording_id = await relay.call()
    assert (await relay.settled(recording_id))["status"] == "transcribed"

    async def three() -> bool:
        return len(receiver.got) >= 3

    await eventually(three, what="three webhooks")
    event = next(json.loads(r.body) for r in receiver.got if b"recording.transcribed" in r.body)
    return dict(event)


async def test_a_spoken_card_never_reaches_the_archive_or_a_subscriber(redis_url: str) -> None:
    async with running_relay(redis_url, **ADMIT) as relay:
        receiver = Receiver()
        async with subscriber(relay, receiver):
            event = await transcribed(relay, receiver)
            everything = archived(relay)
            bodies = [r.body for r in receiver.got]
    for key, data in [*everything.items(), *(("webhook", b) for b in bodies)]:
        assert not holds(data, SPOKEN_CARD, "4111111111111111", "four one one one"), key
    transcript = event["data"]["transcript"]
    assert transcript["redacted"] == {"card": 1}
    assert (transcript["speakers"], transcript["timed"]) == (2, True)
    assert "[card]" in transcript["turns"][1]["text"] and EMAIL in transcript["text"]
    assert "[card]" in event["data"]["transcription"]["diarized"]["transcription"]
    forms = {key.rsplit("/", 1)[-1] for key in everything if "/transcript." in key}
    assert forms == {"transcript.json", "transcript.txt", "transcript.vtt"}
    vtt = next(data for key, data in everything.items() if key.endswith("transcript.vtt"))
    assert vtt.startswith(b"WEBVTT\n\n00:00:00.000 --> ") and b"<v Speaker 1>" in vtt


async def test_the_event_links_to_the_transcript_and_the_link_serves_it(redis_url: str) -> None:
    async with running_relay(redis_url, **ADMIT) as relay:
        receiver = Receiver()
        async with subscriber(relay, receiver):
            event = await transcribed(relay, receiver)
            links = event["data"]["media"]["transcript"]
            assert set(links) == {"json", "txt", "vtt"}
            vtt = await relay.http.get(links["vtt"])
            assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
            assert vtt.headers["content-type"].startswith("text/vtt")
            text = await relay.http.get(links["txt"])
            assert text.text.startswith("Speaker 0: Hello, thanks for calling.")
            forged = links["vtt"].replace("transcript.vtt", "transcript.txt")
            assert (await relay.http.get(forged)).status_code == 403


@pytest.mark.parametrize(
    ("redact", "gone", "kept"),
    [("card,email", [SPOKEN_CARD, EMAIL], []), ("none", [], [SPOKEN_CARD, EMAIL])],
)
async def test_redact_says_what_goes(
    redis_url: str, redact: str, gone: list[str], kept: list[str]
) -> None:
    async with running_relay(redis_url, redact=redact, **ADMIT) as relay:
        receiver = Receiver()
        async with subscriber(relay, receiver):
            event = await transcribed(relay, receiver)
    text = event["data"]["transcript"]["text"]
    assert all(item not in text for item in gone)
    assert all(item in text for item in kept)


async def test_retranscribe_redacts_what_the_archive_already_holds(redis_url: str) -> None:
    async with running_relay(redis_url, redact="none", **ADMIT) as relay:
        receiver = Receiver()
        async with subscriber(relay, receiver):
            await transcribed(relay, receiver)
        assert any(holds(data, EMAIL) for data in archived(relay).values())
        assert relay.worker is not None
        archive = Archive(relay.settings.archive_url)
        everyone = Redactor(Kind)
        retranscriber = Retranscriber(archive, relay.worker.redis, everyone)
        today = datetime.now(UTC).date()
        first = await retranscriber.run(today, today)
        assert (first.seen, first.rewritten, first.redacted) == (1, 1, 2)
        again = await retranscriber.run(today, today)  # the window is done: nothing to do
        assert again.seen == 0
        for key, data in archived(relay).items():
            assert not holds(data, SPOKEN_CARD, EMAIL), key
        inventory = next(
            json.loads(data)
            for key, data in archived(relay).items()
            if key.endswith("events/recording.archived.json")
        )
        for item in inventory["data"]["archive"]["objects"]:
            key = item["key"]
            assert item["size"] == len(archived(relay)[key]), key
