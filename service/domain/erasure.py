"""Erasure: a recording deleted everywhere the relay put it, on request, for a person, or when
its retention ends; and the legal hold that keeps one from all of these.

What the API takes (`SubjectRequest`, `HoldRequest`), what an erasure is (`Erasure`: its kind,
who asked, its progress) and the one rule of who a recording is of (`phone_numbers`): Plivo
writes a number without its `+` (`14155550100`), the API takes E.164 (`+14155550100`); both
name one number, kept as its digits. Nothing here holds a phone number beyond the request.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from service.domain.text import PlainText

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# A number as Plivo writes it in `From`/`To` and `from_number`/`to_number`: digits, the `+`
# optional. Anything else (a SIP URI, `anonymous`) is no phone number.
PLIVO_NUMBER = re.compile(r"\+?[1-9][0-9]{6,14}")
CALL_UUID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{7,63}")


class Reason(StrEnum):
    """Why a recording was erased (`recording.erased`'s `data.reason`)."""

    REQUEST = "request"  # `DELETE /v1/recordings/{id}`, or the dashboard's button
    SUBJECT = "subject"  # `POST /v1/erasures`: every recording of a person or a call
    RETENTION = "retention"  # older than ARCHIVE_RETENTION_DAYS


class Progress(StrEnum):
    RUNNING = "running"
    DONE = "done"  # every recording found is erased (or held, and said so)
    FAILED = "failed"  # a step failed for good for at least one recording: the audit says which


def digits(number: str) -> str:
    """A number as the index keeps it (before hashing): its digits, no `+`."""
    return number.lstrip("+")


def phone_numbers(*sources: Mapping[str, Any] | None) -> set[str]:
    """The phone numbers a recording is of, as `digits`: its callback's `From` and `To`, and
    Plivo's Recording's `from_number` and `to_number`."""
    found = set()
    for source in sources:
        for name in ("From", "To", "from_number", "to_number"):
            value = (source or {}).get(name)
            if isinstance(value, str) and PLIVO_NUMBER.fullmatch(value.strip()):
                found.add(digits(value.strip()))
    return found


def new_id() -> str:
    return "er_" + secrets.token_hex(12)


def is_erasure_id(value: str) -> bool:
    return re.fullmatch(r"er_[0-9a-f]{24}", value) is not None


class SubjectRequest(BaseModel):
    """`POST /v1/erasures`: every recording of one phone number, or of one call."""

    model_config = ConfigDict(extra="forbid")

    phone_number: str | None = Field(
        default=None,
        description="E.164 (+14155550100): the call's From or To",
        json_schema_extra={"examples": ["+14155550100"]},
    )
    call_uuid: str | None = Field(default=None, description="Plivo's CallUUID")

    @model_validator(mode="after")
    def _one_subject(self) -> SubjectRequest:
        if (self.phone_number is None) == (self.call_uuid is None):
            raise ValueError("give exactly one of phone_number and call_uuid")
        if self.phone_number is not None and not E164.fullmatch(self.phone_number):
            raise ValueError("phone_number: must be E.164, a + and 7 to 15 digits (+14155550100)")
        if self.call_uuid is not None and not CALL_UUID.fullmatch(self.call_uuid):
            raise ValueError("call_uuid: not a call UUID")
        return self


def _said(text: str) -> str:
    if not text.strip():
        raise ValueError("must say why")
    return text.strip()


class HoldRequest(BaseModel):
    """`PUT /v1/recordings/{id}/hold`: why the recording must be kept."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[PlainText, Field(min_length=1, max_length=500), AfterValidator(_said)]


class Hold(BaseModel):
    """A legal hold as the archive keeps it (`holds/<recording_id>.json`)."""

    recording_id: str
    reason: str
    placed_at: int = Field(description="epoch ms")
    placed_by: str = Field(description="the API token's fingerprint, or a dashboard session")


class Erasure(BaseModel):
    """An erasure and its progress (`GET /v1/erasures/{id}`)."""

    id: str
    reason: Reason
    status: Progress = Progress.RUNNING
    requested_at: int = Field(description="epoch ms")
    requested_by: str = Field(
        description="the API token's fingerprint, a dashboard session, or `retention`"
    )
    subject: str | None = Field(
        default=None,
        description="an erasure by person: the index folder it erases (a keyed hash, never the "
        "number or call itself)",
    )
    found: int = Field(default=0, description="recordings of the subject the relay archived")
    erased: int = 0
    held: int = Field(default=0, description="found but under a legal hold: kept")
    failed: int = 0
    finished_at: int | None = None

    def counted(self, outcomes: Iterable[str]) -> None:
        """Its counts from its recordings' outcomes (`erased`, `held`, `failed`)."""
        listed = list(outcomes)
        self.erased = listed.count("erased")
        self.held = listed.count("held")
        self.failed = listed.count("failed")
