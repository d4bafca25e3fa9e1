"""Redaction on a generated corpus: does it find everything planted, and leave the look-alikes?

Generates `--transcripts` five-minute transcripts (about 750 words, two speakers, in Plivo's
three documents' shapes: text, raw words with timings, diarized) with planted items in every
form `service.domain.redaction` claims (card numbers written whole, in groups of four split by
spaces or dashes, and spoken digit by digit, "oh" for some zeros; SSNs written and spoken after
"social security"; emails written and spoken; phone numbers written and spoken after "call
me at") and look-alikes that must stay (digit runs of a card's length that fail the Luhn
check, written and spoken; order numbers of 6 to 12 digits, written and spoken; amounts; dates;
times). Then redacts every transcript as the pipeline does (`redact_documents`) and builds
its readable transcript (`transcript.build`), and prints:

- every planted item found (its digits or address no longer in any document), by kind;
- the look-alikes touched (not intact in the redacted text), as a share;
- the cost of redacting a transcript beside the cost of parsing it (building its readable
  transcript) in the same run, as a ratio.

    .venv/bin/python bench/redaction.py --transcripts 2000
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.domain.redaction import Kind, Redactor, luhn, redact_documents
from service.domain.transcript import build

WORDS_PER_TRANSCRIPT = 750  # five minutes at 150 words a minute
SPOKEN = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FILLER = [
    "thanks for getting back to me about the account",
    "let me just check that for you it will take a moment",
    "I was wondering whether the delivery could come earlier this week",
    "sure I can help you with that today",
    "the team said they would look into it and get back to us",
    "could you hold on while I pull up the details",
    "that sounds good to me",
    "we had some trouble with the last shipment",
    "I understand and I am sorry about that",
    "is there anything else I can do for you",
]


def card(rng: random.Random, length: int = 16) -> str:
    """A card number of `length` digits that passes the Luhn check."""
    body = str(rng.choice([4, 5, 3, 6])) + "".join(
        str(rng.randint(0, 9)) for _ in range(length - 2)
    )
    for check in "0123456789":
        if luhn(body + check):
            return body + check
    raise AssertionError("unreachable")


def not_card(rng: random.Random, length: int) -> str:
    """A digit run of `length` that fails the Luhn check."""
    while True:
        digits = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(length - 1))
        if not luhn(digits):
            return digits


def spoken(digits: str, rng: random.Random) -> str:
    return " ".join(("oh" if d == "0" and rng.random() < 0.3 else SPOKEN[int(d)]) for d in digits)


def planted_items(rng: random.Random) -> list[tuple[str, str, str]]:
    """(kind, the sentence, the item in it) for one transcript."""
    number = card(rng, rng.choice([13, 15, 16, 16, 16, 19]))
    groups = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    ssn = f"{rng.randint(100, 665):03}{rng.randint(1, 99):02}{rng.randint(1, 9999):04}"
    phone = f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04}"
    user, domain = rng.choice(["jane.doe", "sam", "a.lee"]), rng.choice(["example", "mail"])
    said_card = rng.choice([number, groups, groups.replace(" ", "-"), spoken(number, rng)])
    items = [
        ("card", "my card number is {}", said_card),
        ("ssn", "my social security number is {}", f"{ssn[:3]}-{ssn[3:5]}-{ssn[5:]}"),
        ("ssn", "my social security number is {}", spoken(ssn, rng)),
        ("email", "send it to {} please", f"{user}@{domain}.com"),
        ("email", "it is {}", f"{user.replace('.', ' dot ')} at {domain} dot com"),
        ("phone", "call me at {}", f"({phone[:3]}) {phone[3:6]}-{phone[6:]}"),
        ("phone", "you can reach me on {}", spoken(phone, rng)),
    ]
    return [(kind, sentence.format(item), item) for kind, sentence, item in items]


def look_alikes(rng: random.Random) -> list[str]:
    """What must stay as it is, one sentence each."""
    run = not_card(rng, rng.choice([13, 16, 19]))
    order = not_card(rng, rng.randint(6, 12))
    return [
        f"the tracking reference is {run}",
        f"the tracking reference is {spoken(not_card(rng, 16), rng)}",
        f"your order number is {order}",
        f"your order number is {spoken(order, rng)}",
        f"that comes to ${rng.randint(1, 9)},{rng.randint(100, 999)}.{rng.randint(10, 99)}",
        f"it shipped on 2026-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}",
        f"we open at {rng.randint(7, 11)}:{rng.choice(['00', '15', '30', '45'])}",
        f"the batch {rng.randint(1000, 9999)} {rng.randint(1000, 9999)} arrived",
    ]


def transcript(
    rng: random.Random,
) -> tuple[dict[str, Any], list[tuple[str, str, str]], list[str]]:
    """Plivo's three documents for one call; what was planted; the look-alikes."""
    planted = planted_items(rng)
    alike = look_alikes(rng)
    sentences = [said for _, said, _ in planted] + alike
    words = sum(len(s.split()) for s in sentences)
    while words < WORDS_PER_TRANSCRIPT:
        sentences.append(rng.choice(FILLER))
        words += len(sentences[-1].split())
    rng.shuffle(sentences)
    turns = [(f"Speaker {n % 2}", sentence + ".") for n, sentence in enumerate(sentences)]
    said = [word.strip(".,") for _, sentence in turns for word in sentence.split()]
    documents = {
        "transcription": {"transcription": " ".join(s for _, s in turns), "status": "success"},
        "raw": {
            "transcription": [
                {"word": word, "start_ms": 380 * n, "end_ms": 380 * n + 330}
                for n, word in enumerate(said)
            ]
        },
        "diarized": {"transcription": "".join(f"\n{who}: {s}\n" for who, s in turns)},
    }
    return documents, planted, alike


def redacted_everywhere(documents: dict[str, Any], kind: str, sentence: str, item: str) -> bool:
    """Whether the item is replaced by its marker in the text and the diarized documents, and
    none of it is left in raw's words."""
    marked = sentence.replace(item, f"[{kind}]")
    raw = " ".join(w["word"] for w in documents["raw"]["transcription"] if w["word"])
    plain = " ".join(word.strip(".,()") for word in item.split())
    return (
        marked in documents["transcription"]["transcription"]
        and marked in documents["diarized"]["transcription"]
        and plain not in raw
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transcripts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    redactor = Redactor(Kind)
    found: dict[str, list[int]] = {kind.value: [0, 0] for kind in Kind}
    touched = total_alike = 0
    redact_s, parse_s = [], []
    for _ in range(args.transcripts):
        documents, planted, alike = transcript(rng)
        started = time.perf_counter()
        counts = redact_documents(redactor, documents.values())
        middle = time.perf_counter()
        build(
            documents["transcription"]["transcription"],
            documents["raw"]["transcription"],
            documents["diarized"]["transcription"],
            counts,
        )
        redact_s.append(middle - started)
        parse_s.append(time.perf_counter() - middle)
        for kind, sentence, item in planted:
            found[kind][1] += 1
            found[kind][0] += redacted_everywhere(documents, kind, sentence, item)
        for sentence in alike:
            total_alike += 1
            if sentence not in documents["transcription"]["transcription"]:
                touched += 1
    print(
        f"{args.transcripts} transcripts of about {WORDS_PER_TRANSCRIPT} words (seed {args.seed})"
    )
    for kind, (hit, planted_count) in found.items():
        print(f"  {kind:6} found {hit} of {planted_count} planted ({hit / planted_count:.2%})")
    print(f"  look-alikes touched: {touched} of {total_alike} ({touched / total_alike:.2%})")
    redact_ms = statistics.median(redact_s) * 1000
    parse_ms = statistics.median(parse_s) * 1000
    print(
        f"  per transcript (median): redaction {redact_ms:.2f} ms, parsing {parse_ms:.2f} ms, "
        f"ratio {redact_ms / parse_ms:.1f}x"
    )


if __name__ == "__main__":
    main()
