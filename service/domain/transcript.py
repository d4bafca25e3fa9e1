"""The transcript as people read it: who said what, and when, from Plivo's three documents.

Turns come from the `diarized` document (`"\\nSpeaker 0: ...\\n\\nSpeaker 1: ..."`), times from
`raw` where it carries word timings. Plivo does not document `raw`'s shape, so the shapes a
recognizer commonly returns are accepted: a list of words each with a start and an end (`start_ms`
and `end_ms` in milliseconds; `start` and `end`, or `start_time` and `end_time`, in seconds,
as numbers or strings like `"1.25"` or `"1.25s"`), or an object holding such a list (under
`words`, `items`, or `results` / `alternatives`). Anything else is untimed. A transcript that
cannot be derived is never a failure: `problems` says what could not be.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field

SPEAKER = re.compile(r"(?:^|\n)\s*(Speaker\s+[\w-]+)\s*:\s*", re.IGNORECASE)
WORD_KEYS = ("word", "punctuated_word", "text", "content", "token")
TIMES = (("start_ms", "end_ms", 1.0), ("start", "end", 1000.0), ("start_time", "end_time", 1000.0))
SEARCH_DEPTH = 6
FORMS = ("json", "txt", "vtt")  # the transcript's forms in the archive, `transcript.<form>`


class Turn(BaseModel):
    """What one speaker said, without being interrupted."""

    speaker: str = Field(description="a stable label: `Speaker 0`, `Speaker 1`, ...")
    text: str
    start_ms: int | None = Field(default=None, description="when timed")
    end_ms: int | None = Field(default=None, description="when timed")


class ReadableTranscript(BaseModel):
    """The transcript of `recording.transcribed`'s `data.transcript`."""

    text: str = Field(description="what was said, plain")
    turns: list[Turn] = Field(description="in order")
    speakers: int
    words: int
    timed: bool = Field(description="whether the turns carry times (from `raw`)")
    redacted: dict[str, int] = Field(description="what `REDACT` removed, by kind")
    problems: list[str] = Field(
        default_factory=list, description="what could not be derived, in sentences"
    )

    def plain(self) -> str:
        """One turn a paragraph, speaker first (`transcript.txt`)."""
        if not self.turns:
            return self.text + "\n"
        return "".join(f"{turn.speaker}: {turn.text}\n\n" for turn in self.turns)

    def webvtt(self) -> str | None:
        """WebVTT, one cue a turn, the speaker as a voice tag (`transcript.vtt`); None when
        untimed."""
        if not self.timed:
            return None
        cues = ["WEBVTT", ""]
        for turn in self.turns:
            assert turn.start_ms is not None and turn.end_ms is not None
            cues += [
                f"{_clock(turn.start_ms)} --> {_clock(turn.end_ms)}",
                f"<v {_voice(turn.speaker)}>{_cue_text(turn.text)}",
                "",
            ]
        return "\n".join(cues)


def forms(readable: ReadableTranscript) -> tuple[str, ...]:
    """The forms the archive keeps it in: `json` and `txt`, and `vtt` when it is timed."""
    return FORMS if readable.timed else FORMS[:2]


def files(readable: ReadableTranscript) -> dict[str, bytes]:
    """The transcript in its `forms`, by their names in the archive: `transcript.json` (the
    model), `transcript.txt` (a turn a paragraph) and, when timed, `transcript.vtt` (WebVTT)."""
    kept = {
        "transcript.json": readable.model_dump_json().encode(),
        "transcript.txt": readable.plain().encode(),
    }
    vtt = readable.webvtt()
    if vtt is not None:
        kept["transcript.vtt"] = vtt.encode()
    return kept


def build(
    transcription: Any, raw: Any, diarized: Any, redacted: dict[str, int]
) -> ReadableTranscript:
    """The transcript from Plivo's three documents' `transcription` fields (already redacted)."""
    problems = []
    turns = turns_of(diarized) if isinstance(diarized, str) else []
    if not turns:
        problems.append("no speaker turns: the diarized document holds none")
    text = transcription if isinstance(transcription, str) else ""
    if not text:
        text = " ".join(turn.text for turn in turns)
    timings = list(words_of(raw))
    said = sum(len(turn.text.split()) for turn in turns)
    words = len([w for w in timings if w[0]]) or said or len(text.split())
    timed = False
    if not timings:
        problems.append("untimed: raw carries no word timings in a shape the relay knows")
    elif turns:
        timed = _timed(turns, timings)
        if not timed:
            problems.append(
                f"untimed: raw's {len(timings)} words do not match the turns' {said} words"
            )
    return ReadableTranscript(
        text=text,
        turns=turns,
        speakers=len({turn.speaker for turn in turns}),
        words=words,
        timed=timed,
        redacted=redacted,
        problems=problems,
    )


def turns_of(diarized: str) -> list[Turn]:
    """The speakers' turns in a diarized text."""
    pieces = SPEAKER.split(diarized)
    turns = []
    for label, said in zip(pieces[1::2], pieces[2::2], strict=True):
        text = " ".join(said.split())
        if text:
            turns.append(Turn(speaker=" ".join(label.split()).title(), text=text))
    return turns


def word_list(raw: Any, depth: int = 0) -> list[dict[str, Any]] | None:
    """The list of word objects in `raw`, wherever a known shape keeps it; None if none."""
    words = isinstance(raw, list) and raw and all(isinstance(w, dict) for w in raw)
    if words and any(text_slot(w) is not None for w in raw):
        return raw  # type: ignore[no-any-return]
    if depth >= SEARCH_DEPTH:
        return None
    children: list[Any] = []
    if isinstance(raw, dict):
        children = [raw.get(key) for key in ("words", "items", "results", "alternatives")]
        children += [raw.get("channels")]
    elif isinstance(raw, list):
        children = raw[:8]
    for child in children:
        if child is not None:
            found = word_list(child, depth + 1)
            if found is not None:
                return found
    return None


def words_of(raw: Any) -> Iterator[tuple[str, int, int]]:
    """Each timed word of `raw`: its text and its start and end in ms (none if any word of the
    list is untimed)."""
    found = word_list(raw)
    if found is None:
        return
    timed = []
    for word in found:
        slot = text_slot(word)
        text = str(slot[0][slot[1]]) if slot else ""
        times = _times(word)
        if times is None:
            return
        timed.append((text, *times))
    yield from timed


def text_slot(word: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """Where a word object keeps its text (the object and the key): one of `WORD_KEYS`, or AWS
    Transcribe's `alternatives[0].content`; None if it keeps none."""
    key = next((key for key in WORD_KEYS if isinstance(word.get(key), str)), None)
    if key is not None:
        return word, key
    alternatives = word.get("alternatives")
    first = alternatives[0] if isinstance(alternatives, list) and alternatives else None
    if isinstance(first, dict) and isinstance(first.get("content"), str):
        return first, "content"
    return None


def _times(word: dict[str, Any]) -> tuple[int, int] | None:
    for start_key, end_key, scale in TIMES:
        start, end = _number(word.get(start_key)), _number(word.get(end_key))
        if start is not None and end is not None:
            return round(start * scale), round(end * scale)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().removesuffix("s"))
        except ValueError:
            return None
    return None


def _timed(turns: list[Turn], timings: list[tuple[str, int, int]]) -> bool:
    """Give each turn the times of its words, in order, when raw's words are the turns' words
    (words a redaction emptied are skipped); whether they were."""
    spoken = [t for t in timings if t[0]]
    counts = [len(turn.text.split()) for turn in turns]
    if sum(counts) != len(spoken):
        return False
    at = 0
    for turn, count in zip(turns, counts, strict=True):
        if count == 0:
            return False
        turn.start_ms, turn.end_ms = spoken[at][1], spoken[at + count - 1][2]
        at += count
    return True


def _clock(ms: int) -> str:
    hours, rest = divmod(max(0, ms), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02}:{minutes:02}:{seconds:02}.{millis:03}"


def _voice(speaker: str) -> str:
    return re.sub(r"[^\w -]", "", speaker)


def _cue_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("-->", "->")
