"""Text a caller gives the relay to keep and show back (a subscription's description): plain,
printable text. Control characters (NUL, escapes, line breaks), the marks that reorder text
(right-to-left overrides and isolates) and invisible formatting would make the dashboard show
other than what is stored, or a log line other than what happened: they are refused (422) as
the text is validated, before anything is stored."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

# Right-to-left and left-to-right marks, embeddings, overrides and isolates.
REORDERING = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_plain(text: str) -> str:
    for position, character in enumerate(text):
        category = unicodedata.category(character)
        if (
            character in REORDERING
            or category in ("Cc", "Cs", "Co", "Cn")
            or (
                category == "Cf" and character != "\u200d"  # a zero-width joiner builds emoji
            )
        ):
            raise ValueError(
                f"has a control or formatting character (U+{ord(character):04X}) at "
                f"{position}: only printable text is kept"
            )
    return text


PlainText = Annotated[str, AfterValidator(check_plain)]
