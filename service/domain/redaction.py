"""Redaction: what was said that the relay must not keep or send (`REDACT`).

Card numbers (13 to 19 digits passing the Luhn check, written whole or in groups of digits
split by spaces or dashes, or spoken digit by digit as recognizers write them: "four one one
one ..."), US social security numbers, email addresses and phone numbers each become a marker
of their kind (`[card]`, `[ssn]`, `[email]`, `[phone]`). It applies to what was said (the
transcript documents), never to the call's own metadata.

Look-alikes stay: a digit run that fails the Luhn check, amounts, dates, times, and digit runs
of a card's length that are not one. An SSN or a phone number said as bare digits (no
dashes, no parentheses, no `+`) is taken as one only after a word that says so ("social",
"security", "phone", "cell", "mobile", "call", "reach", "text"): an order number read out
digit by digit stays.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service.domain.callbacks import TranscriptionCallback
from service.domain.transcript import text_slot, word_list


class Kind(StrEnum):
    """What a redaction removed."""

    CARD = "card"
    SSN = "ssn"
    EMAIL = "email"
    PHONE = "phone"


SPOKEN = {
    "zero": "0",
    "oh": "0",
    "o": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
AMBIGUOUS = {"oh", "o"}  # also an interjection and a letter: trimmed off a run's ends
EDGE = ".,;:!?\"'()"  # punctuation a recognizer leaves on a word
TOKEN = re.compile(r"\S+")
DIGITS = re.compile(r"\d+(?:-\d+)*")
EMAIL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
TLDS = "com|net|org|io|co|edu|gov|us|uk|ca|de|fr|in|info|biz|me"
SPOKEN_EMAIL = re.compile(
    rf"\b[a-z0-9]+(?: dot [a-z0-9]+)* at [a-z0-9]+(?: dot [a-z0-9]+)* dot (?:{TLDS})\b",
    re.IGNORECASE,
)
SSN = re.compile(r"(?<![\d-])(\d{3})[- ](\d{2})[- ](\d{4})(?![\d-])")
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)\s?|\d{3}[.-])\d{3}[.-]\d{4}(?![\w-])"
    r"|(?<![\w+])\+\d{10,15}(?!\d)"
)
SSN_WORDS = {"social", "security", "ssn"}
PHONE_WORDS = {"phone", "cell", "mobile", "call", "reach", "text", "telephone"}
CONTEXT_TOKENS = 6  # how far back a word that says what the digits are may stand


@dataclass(frozen=True)
class Span:
    """A stretch of text (`start` to `end`) that is one thing of `kind`."""

    start: int
    end: int
    kind: Kind


def luhn(digits: str) -> bool:
    """Whether `digits` pass the Luhn check (cards carry one)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    word: str  # lowercased, edge punctuation off
    digits: str  # what it says in digits ("" if it is not a number)
    spoken: bool


def _tokens(text: str) -> list[_Token]:
    found = []
    for match in TOKEN.finditer(text):
        raw = match.group()
        word = raw.strip(EDGE)
        lead = len(raw) - len(raw.lstrip(EDGE))
        start = match.start() + lead
        end = start + len(word)
        lower = word.lower()
        if DIGITS.fullmatch(word):
            found.append(_Token(start, end, lower, word.replace("-", ""), False))
        elif lower in SPOKEN:
            found.append(_Token(start, end, lower, SPOKEN[lower], True))
        else:
            found.append(_Token(start, end, lower, "", False))
    return found


def _runs(tokens: Sequence[_Token]) -> Iterable[tuple[int, int]]:
    """The maximal runs of consecutive number tokens, as [first, last) indexes."""
    first = None
    for index, token in enumerate(tokens):
        if token.digits and first is None:
            first = index
        elif not token.digits and first is not None:
            yield first, index
            first = None
    if first is not None:
        yield first, len(tokens)


def _windows(tokens: Sequence[_Token], first: int, last: int) -> list[tuple[int, int]]:
    """The run, then the run without one or two "oh"s at either end (an "oh" may be a zero,
    or an interjection beside the number), the fewest left out first."""
    lead = trail = 0
    while lead < 2 and first + lead < last and tokens[first + lead].word in AMBIGUOUS:
        lead += 1
    while trail < 2 and last - trail > first and tokens[last - trail - 1].word in AMBIGUOUS:
        trail += 1
    windows = [(first + i, last - j) for i in range(lead + 1) for j in range(trail + 1)]
    windows.sort(key=lambda w: (w[0] - first) + (last - w[1]))
    return [w for w in windows if w[0] < w[1]]


def _said_before(tokens: Sequence[_Token], index: int, words: set[str]) -> bool:
    return any(t.word in words for t in tokens[max(0, index - CONTEXT_TOKENS) : index])


def _digit_runs(tokens: Sequence[_Token], kinds: frozenset[Kind]) -> list[Span]:
    """Cards, and SSNs and phone numbers said as bare digits, among the runs of numbers."""
    spans = []
    for whole in _runs(tokens):
        for first, last in _windows(tokens, *whole):
            digits = "".join(t.digits for t in tokens[first:last])
            kind = None
            if Kind.CARD in kinds and 13 <= len(digits) <= 19 and luhn(digits):
                kind = Kind.CARD
            elif (
                Kind.SSN in kinds
                and len(digits) == 9
                and _valid_ssn(digits)
                and _said_before(tokens, first, SSN_WORDS)
            ):
                kind = Kind.SSN
            elif (
                Kind.PHONE in kinds
                and (len(digits) == 10 or (len(digits) == 11 and digits[0] == "1"))
                and _said_before(tokens, first, PHONE_WORDS)
            ):
                kind = Kind.PHONE
            if kind is not None:
                spans.append(Span(tokens[first].start, tokens[last - 1].end, kind))
                break
    return spans


def _valid_ssn(digits: str) -> bool:
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


class Redactor:
    """Finds what `REDACT` names in text and puts markers in its place."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self.kinds = frozenset(kinds)

    @classmethod
    def named(cls, names: Iterable[str]) -> Redactor:
        """The redactor of `REDACT`'s names (`Settings.redact`, checked there)."""
        return cls(Kind(name) for name in names)

    def spans(self, text: str) -> list[Span]:
        """What is to be redacted in `text`, in order, none overlapping."""
        if not self.kinds or not text:
            return []
        found: list[Span] = []
        if Kind.EMAIL in self.kinds:
            found += [Span(m.start(), m.end(), Kind.EMAIL) for m in EMAIL.finditer(text)]
            found += [Span(m.start(), m.end(), Kind.EMAIL) for m in SPOKEN_EMAIL.finditer(text)]
        if Kind.SSN in self.kinds:
            found += [
                Span(m.start(), m.end(), Kind.SSN)
                for m in SSN.finditer(text)
                if _valid_ssn("".join(m.groups()))
            ]
        if Kind.PHONE in self.kinds:
            found += [Span(m.start(), m.end(), Kind.PHONE) for m in PHONE.finditer(text)]
        found += _digit_runs(_tokens(text), self.kinds)
        return _apart(found)

    def text(self, text: str) -> tuple[str, dict[Kind, int]]:
        """`text` with each thing found replaced by its marker; how many of each kind."""
        counts = dict.fromkeys(self.kinds, 0)
        pieces, at = [], 0
        for span in self.spans(text):
            pieces += [text[at : span.start], f"[{span.kind}]"]
            at = span.end
            counts[span.kind] += 1
        return "".join(pieces) + text[at:], counts

    def words(self, words: Sequence[str]) -> tuple[list[str], dict[Kind, int]]:
        """`words` (a recognizer's, one by one) redacted across their boundaries: the first word
        of a match becomes its marker, the others empty (their timings stay); the counts."""
        counts = dict.fromkeys(self.kinds, 0)
        starts, at = [], 0
        for word in words:
            starts.append(at)
            at += len(word) + 1
        joined = " ".join(words)
        redacted = list(words)
        for span in self.spans(joined):
            counts[span.kind] += 1
            touched = [
                i for i, s in enumerate(starts) if s < span.end and s + len(words[i]) > span.start
            ]
            for n, index in enumerate(touched):
                redacted[index] = f"[{span.kind}]" if n == 0 else ""
        return redacted, counts


def _apart(spans: list[Span]) -> list[Span]:
    """`spans` in order, the earlier (then the longer) kept where two overlap."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start))):
        if kept and span.start < kept[-1].end:
            continue
        kept.append(span)
    return kept


def redact_value(redactor: Redactor, value: Any) -> tuple[Any, dict[Kind, int]]:
    """A document's value redacted, whatever its shape: text, a recognizer's list of words
    (across their boundaries), or any JSON holding them; the counts."""
    counts = dict.fromkeys(redactor.kinds, 0)
    if not redactor.kinds:
        return value, counts
    value = copy.deepcopy(value)
    found = word_list(value)
    if found is not None:
        slots = [text_slot(word) for word in found]
        texts = [str(slot[0][slot[1]]) if slot else "" for slot in slots]
        redacted, counts = redactor.words(texts)
        for slot, text in zip(slots, redacted, strict=True):
            if slot:
                slot[0][slot[1]] = text
    return _walk(redactor, value, counts, done=found), counts


def _walk(redactor: Redactor, value: Any, counts: dict[Kind, int], done: object = None) -> Any:
    """Every string in `value` redacted (what a word list left: other fields, other shapes);
    `done`, the word list redacted already, as it is."""
    if value is done:
        return value
    if isinstance(value, str):
        text, found = redactor.text(value)
        for kind, count in found.items():
            counts[kind] += count
        return text
    if isinstance(value, list):
        return [_walk(redactor, item, counts, done) for item in value]
    if isinstance(value, dict):
        return {key: _walk(redactor, item, counts, done) for key, item in value.items()}
    return value


def redact_documents(redactor: Redactor, documents: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Plivo's transcript documents redacted in place (what was said: their `transcription`
    field, whatever its shape); the most of each kind that any one of them held."""
    most = {kind.value: 0 for kind in sorted(redactor.kinds)}
    for document in documents:
        if "transcription" in document:
            document["transcription"], counts = redact_value(redactor, document["transcription"])
            for kind, count in counts.items():
                most[kind.value] = max(most[kind.value], count)
    return most


def redact_callback(redactor: Redactor, callback: TranscriptionCallback) -> TranscriptionCallback:
    """Plivo's transcription callback with what was said redacted (its text, and the parameter
    that carried it); the call's own parameters as they came."""
    if not redactor.kinds or not callback.transcription:
        return callback
    text, _ = redactor.text(callback.transcription)
    params = {
        name: redactor.text(value)[0] if name.lower() == "transcription" else value
        for name, value in callback.params.items()
    }
    return callback.model_copy(update={"transcription": text, "params": params})
