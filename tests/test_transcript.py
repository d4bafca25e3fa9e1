"""The readable transcript (`service.domain.transcript`): turns from the diarized text, times
from raw in the shapes recognizers return, and never a failure. No server."""

from __future__ import annotations

from typing import Any

import pytest

from service.domain.transcript import build, turns_of

DIARIZED = "\nSpeaker 0: Hello, thanks for calling.\n\nSpeaker 1: How can I help?"
WORDS = ["Hello", "thanks", "for", "calling", "How", "can", "I", "help"]


def test_turns_are_the_speakers_in_order() -> None:
    turns = turns_of(DIARIZED)
    assert [(t.speaker, t.text) for t in turns] == [
        ("Speaker 0", "Hello, thanks for calling."),
        ("Speaker 1", "How can I help?"),
    ]


def shaped(kind: str) -> Any:
    """The same eight timed words in one of the shapes recognizers return."""
    timed = [(w, 0.5 * n, 0.5 * n + 0.4) for n, w in enumerate(WORDS)]
    if kind == "ms":
        return [{"word": w, "start_ms": s * 1000, "end_ms": e * 1000} for w, s, e in timed]
    if kind == "seconds":
        return [{"text": w, "start": s, "end": e} for w, s, e in timed]
    if kind == "strings":
        return {
            "words": [{"word": w, "start_time": f"{s}s", "end_time": f"{e}s"} for w, s, e in timed]
        }
    if kind == "aws":
        items = [
            {"start_time": str(s), "end_time": str(e), "alternatives": [{"content": w}]}
            for w, s, e in timed
        ]
        return {"items": items}
    return {"results": {"channels": [{"alternatives": [{"words": shaped("seconds")}]}]}}


@pytest.mark.parametrize("kind", ["ms", "seconds", "strings", "aws", "nested"])
def test_turns_take_their_times_from_raw_whatever_its_shape(kind: str) -> None:
    readable = build("Hello, thanks for calling. How can I help?", shaped(kind), DIARIZED, {})
    assert readable.timed and readable.problems == []
    assert [(t.start_ms, t.end_ms) for t in readable.turns] == [(0, 1900), (2000, 3900)]
    assert (readable.speakers, readable.words) == (2, 8)
    vtt = readable.webvtt()
    assert vtt is not None and vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.900\n")
    assert "<v Speaker 1>How can I help?" in vtt


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "just text",
        {"confidence": 0.9},
        [{"word": "Hello"}],
        [{"word": "x", "start_ms": 1, "end_ms": 2}],
    ],
)
def test_an_unknown_or_mismatched_raw_is_untimed_and_says_why(raw: Any) -> None:
    readable = build("Hello, thanks for calling. How can I help?", raw, DIARIZED, {})
    assert not readable.timed and readable.webvtt() is None
    assert len(readable.turns) == 2
    assert any(problem.startswith("untimed") for problem in readable.problems)


def test_nothing_usable_is_still_a_transcript_that_says_so() -> None:
    readable = build(None, None, None, {"card": 0})
    assert readable.text == "" and readable.turns == [] and not readable.timed
    assert len(readable.problems) == 2
    assert readable.plain() == "\n"


def test_the_plain_text_is_a_turn_a_paragraph_speaker_first() -> None:
    readable = build(None, shaped("ms"), DIARIZED, {})
    assert readable.text == "Hello, thanks for calling. How can I help?"
    assert readable.plain() == (
        "Speaker 0: Hello, thanks for calling.\n\nSpeaker 1: How can I help?\n\n"
    )


def test_a_redacted_card_keeps_the_turns_timed() -> None:
    spoken = ["my", "card", "[card]", *[""] * 15, "thanks"]
    raw = [{"word": w, "start_ms": 100 * n, "end_ms": 100 * n + 90} for n, w in enumerate(spoken)]
    readable = build(None, raw, "\nSpeaker 1: my card [card] thanks\n", {"card": 1})
    assert readable.timed and readable.words == 4
    assert (readable.turns[0].start_ms, readable.turns[0].end_ms) == (0, 1890)
    assert readable.redacted == {"card": 1}
