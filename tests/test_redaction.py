"""Redaction (`service.domain.redaction`): every form of what REDACT names is found, the
look-alikes stay. No server: text in, text out."""

from __future__ import annotations

import pytest

from service.domain.redaction import Kind, Redactor, luhn, redact_documents, redact_value
from service.settings import REDACTABLE

ALL = Redactor(Kind)
CARDS = Redactor([Kind.CARD])


@pytest.mark.parametrize(
    "said",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "four one one one one one one one one one one one one one one one",
        "3782 822463 10005",  # American Express, 15 digits in its own groups
        "four one one one one one one one one one one one one one one one.",
    ],
)
def test_a_card_number_is_redacted_however_it_is_written_or_said(said: str) -> None:
    text, counts = CARDS.text(f"my card is {said} thanks")
    assert text.rstrip(".") in ("my card is [card] thanks", "my card is [card]. thanks")
    assert counts == {Kind.CARD: 1}


@pytest.mark.parametrize("stray", ["it is oh {} right", "it is {} oh right"])
def test_zeros_said_as_oh_and_a_stray_oh_beside_the_number_do_not_hide_it(stray: str) -> None:
    spoken = "five one oh five one oh five one oh five one oh five one oh oh"
    assert luhn("5105105105105100")
    text, counts = CARDS.text(stray.format(spoken))
    assert counts == {Kind.CARD: 1}
    assert "[card]" in text and "five" not in text and text.endswith("right")


@pytest.mark.parametrize(
    "look_alike",
    [
        "4111 1111 1111 1112",  # fails the Luhn check
        "order 1234567890123456",  # a card's length, not a card
        "one two three four five six seven eight nine one two three four five six",
        "that is $1,234.56",
        "on 2026-12-02 at 10:30",
        "12/02/2026",
        "your order number is 415 555 0134",  # a phone's digits, with no word that says so
        "reference one two three four five six seven eight nine",  # nine digits, no "social"
    ],
)
def test_look_alikes_stay_as_they_are(look_alike: str) -> None:
    text, counts = ALL.text(look_alike)
    assert text == look_alike
    assert sum(counts.values()) == 0


def test_ssns_emails_and_phone_numbers_in_their_forms() -> None:
    said = (
        "my social security number is 219-09-9999, or said: social security one two three four "
        "five six seven eight nine. Mail jane.doe@example.com or jane dot doe at example dot "
        "com. Call (415) 555-0134, +14155550134, 415.555.0134 or call me at four one five five "
        "five five zero one three four."
    )
    text, counts = ALL.text(said)
    assert counts == {Kind.CARD: 0, Kind.SSN: 2, Kind.EMAIL: 2, Kind.PHONE: 4}
    for gone in ("219", "jane", "555", "four one five", "one two three"):
        assert gone not in text, text


def test_an_ssn_that_cannot_be_one_stays() -> None:
    for impossible in ("000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567"):
        assert ALL.text(impossible)[0] == impossible


def test_only_what_redact_names_goes() -> None:
    said = "card 4111 1111 1111 1111, mail sam@example.com"
    assert CARDS.text(said)[0] == "card [card], mail sam@example.com"
    assert Redactor([]).text(said) == (said, {})


def test_a_recognizers_words_are_redacted_across_their_boundaries_and_keep_their_times() -> None:
    said = f"pay with {' '.join(['four'] + ['one'] * 15)} please".split()
    words = [{"word": w, "start_ms": 100 * n, "end_ms": 100 * n + 90} for n, w in enumerate(said)]
    redacted, counts = redact_value(CARDS, words)
    assert counts == {Kind.CARD: 1}
    said = [w["word"] for w in redacted]
    assert said[:3] == ["pay", "with", "[card]"] and said[-1] == "please"
    assert said[3:-1] == [""] * 15
    assert [w["start_ms"] for w in redacted] == [w["start_ms"] for w in words]
    assert words[2]["word"] == "four"  # the caller's copy is not touched


def test_plivos_three_documents_are_redacted_and_counted_once() -> None:
    spoken = "four one one one one one one one one one one one one one one one"
    documents = [
        {"status": "success", "transcription": f"my card is {spoken}"},
        {"transcription": [{"word": w, "start_ms": 0, "end_ms": 1} for w in spoken.split()]},
        {"transcription": f"\nSpeaker 0: my card is {spoken}\n"},
    ]
    counts = redact_documents(CARDS, documents)
    assert counts == {"card": 1}
    assert documents[0]["transcription"] == "my card is [card]"
    assert "one" not in str(documents[1]) and "four" not in str(documents[1])
    assert documents[2]["transcription"] == "\nSpeaker 0: my card is [card]\n"


def test_unknown_shapes_are_redacted_string_by_string() -> None:
    odd = {"segments": [{"said": "mail me at sam@example.com"}], "n": 4111111111111111}
    redacted, counts = redact_value(ALL, odd)
    assert redacted == {"segments": [{"said": "mail me at [email]"}], "n": 4111111111111111}
    assert counts[Kind.EMAIL] == 1


def test_redact_names_the_kinds_the_redactor_knows() -> None:
    assert set(REDACTABLE) == {kind.value for kind in Kind}


def test_aws_transcribe_items_are_redacted_across_words_too() -> None:
    said = [
        "call",
        "me",
        "at",
        "four",
        "one",
        "five",
        "five",
        "five",
        "five",
        "zero",
        "one",
        "three",
        "four",
    ]
    items = [{"start_time": str(n), "alternatives": [{"content": w}]} for n, w in enumerate(said)]
    redacted, counts = redact_value(ALL, {"items": items})
    assert counts[Kind.PHONE] == 1
    contents = [item["alternatives"][0]["content"] for item in redacted["items"]]
    assert contents[:4] == ["call", "me", "at", "[phone]"] and set(contents[4:]) == {""}
