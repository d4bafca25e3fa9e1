"""The events the relay emits: the contract downstream services rely on.

Every event is `{"type", "timestamp", "data"}` (Standard Webhooks' convention). `data` always
has `recording_id`, `call_uuid`, `recording` (Plivo's Recording object, numbers as numbers, or
null when it could not be fetched) and `callback` (the original callback parameters);
`recording.transcribed` adds `transcription` (Plivo's documents, redacted) and `transcript`
(`service.domain.transcript`), `recording.failed` adds `stage` and `reason`,
`recording.archived` (sent once the audio and the documents are in the archive) adds `archive`.
Every one ends with `media`: a signed link to the audio (`service.domain.media_links`), fresh
in each webhook attempt, or null when the recording could not be fetched from Plivo.
`recording.erased` (the recording is deleted everywhere the relay put it: delete your copies)
has ids, times and why only, no personal data. `subscription.disabled` has `subscription_id`,
`url` (its scheme, host and port only) and `reason`. The JSON Schema of them all is
`docs/events.v1.schema.json`; a change to these models is a new version (an additive one, a
new event type, is not).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from service.domain.erasure import Reason
from service.domain.transcript import ReadableTranscript

SCHEMA_VERSION = 1
EventType = Literal[
    "recording.completed", "recording.transcribed", "recording.failed", "recording.archived"
]
COMPLETED: EventType = "recording.completed"
TRANSCRIBED: EventType = "recording.transcribed"
FAILED: EventType = "recording.failed"
ARCHIVED: EventType = "recording.archived"
EVENT_TYPES: tuple[EventType, ...] = (COMPLETED, TRANSCRIBED, FAILED, ARCHIVED)
ERASED: Literal["recording.erased"] = "recording.erased"
MEDIA_FIELD = ',"media":'  # how `data.media`, the body's last field, begins in a body


class Stage(StrEnum):
    """The step of a recording's pipeline that failed (`recording.failed`'s `stage`)."""

    FETCH_RECORDING = "fetch_recording"
    REQUEST_TRANSCRIPTION = "request_transcription"
    COLLECT_TRANSCRIPTION = "collect_transcription"
    TRANSCRIPTION = "transcription"  # Plivo's transcription itself failed, or never came
    DELETE_RECORDING = "delete_recording"


EventSource = Literal["callback", "reconciliation", "backfill"]  # `Origin`'s values


class Transcript(BaseModel):
    """The three forms of a transcript, each as Plivo returned it, and what it cost."""

    model_config = ConfigDict(extra="forbid")

    transcription: Any = Field(description="type=transcription: Plivo's answer (or callback)")
    raw: Any = Field(description="type=raw: Plivo's answer")
    diarized: Any = Field(description="type=diarized: Plivo's answer")
    cost: float | None = None
    rate: float | None = None


class ArchivedObject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="the object's key in the store (ARCHIVE_URL's root)")
    size: int = Field(description="bytes")
    sha256: str = Field(description="hex SHA-256 of the object's bytes")


class ArchiveData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="the store's URL of the recording's prefix")
    objects: list[ArchivedObject]


class Media(BaseModel):
    """A link to the recording's audio, signed by the relay: no Plivo credentials needed.
    Add `&type=original` for the pre-denoised copy, where the archive has one."""

    model_config = ConfigDict(extra="forbid")

    url: str
    format: str = Field(description="mp3 or wav, as Plivo recorded it")
    expires_at: str = Field(description="ISO 8601, UTC: ask for a replay for a new link")
    transcript: dict[str, str] | None = Field(
        default=None,
        description="recording.transcribed: signed links to the transcript by form: json, txt, "
        "and vtt (WebVTT) when it is timed",
    )


class EventData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording_id: str
    call_uuid: str | None
    recording: dict[str, Any] | None = Field(description="Plivo's Recording object")
    callback: dict[str, str] = Field(description="the recording callback's original parameters")
    transcription: Transcript | None = None
    stage: str | None = Field(default=None, description="recording.failed: the step that failed")
    reason: str | None = Field(default=None, description="recording.failed: Plivo's reason")
    archive: ArchiveData | None = Field(default=None, description="recording.archived")
    source: EventSource = Field(
        default="callback",
        description="how the relay learned of the recording: Plivo's callback, or a sweep or "
        "backfill of Plivo's List Recordings API that found it",
    )
    transcribe: bool = Field(
        default=True, description="false: backfilled without transcription (none is bought)"
    )
    transcript: ReadableTranscript | None = Field(
        default=None,
        description="recording.transcribed: who said what and when, redacted as REDACT says",
    )
    media: Media | None = Field(description="always the last field: see `with_media`")


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: EventType
    timestamp: str = Field(description="ISO 8601, UTC")
    data: EventData


class ErasedData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording_id: str
    erasure_id: str = Field(description="GET /v1/erasures/{id}: the erasure and its audit record")
    reason: Reason = Field(
        description="request (one recording), subject (every recording of a person or a call) "
        "or retention (older than ARCHIVE_RETENTION_DAYS)"
    )
    erased_at: str = Field(description="ISO 8601, UTC")
    erased: list[str] = Field(
        description="what the relay erased: `relay` (its queues, state and media links), "
        "`archive` (every object of the recording), `plivo` (Plivo's recording and "
        "transcription)"
    )


class RecordingErased(BaseModel):
    """`recording.erased`: the relay holds nothing of the recording any more; a subscriber
    deletes what it keeps of it."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["recording.erased"]
    timestamp: str = Field(description="ISO 8601, UTC")
    data: ErasedData


class DisabledData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscription_id: str
    url: str = Field(description="the subscription's URL's scheme, host and port only")
    reason: str


class SubscriptionDisabled(BaseModel):
    """`subscription.disabled`: an operational event, for the subscriptions that asked."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["subscription.disabled"]
    timestamp: str = Field(description="ISO 8601, UTC")
    data: DisabledData


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(kind: EventType, data: EventData) -> Event:
    return Event(type=kind, timestamp=now_iso(), data=data)


def with_media(body: str, fresh: Callable[[Media], Media]) -> str:
    """`body` (an event as `make_event` wrote it) with its `data.media` replaced by
    `fresh(current)`; as it is when it has none. `media` is the last field of `data`, and
    `data` the last of the event, so this needs no parsing of the rest of the body (which
    can be hundreds of kilobytes of transcript)."""
    at = body.rfind(MEDIA_FIELD)
    if at < 0 or not body.endswith("}}"):
        return body
    current = body[at + len(MEDIA_FIELD) : -2]
    if current == "null":
        return body
    try:
        media = fresh(Media.model_validate_json(current))
    except ValidationError:  # not a media link: a body of another shape
        return body
    return f"{body[:at]}{MEDIA_FIELD}{media.model_dump_json()}}}}}"


def json_schema() -> dict[str, Any]:
    """Every event the relay sends, one of them by its `type`."""
    either = TypeAdapter(
        Annotated[Event | RecordingErased | SubscriptionDisabled, Field(discriminator="type")]
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://recording-relay/events.v{SCHEMA_VERSION}.schema.json",
        "title": f"recording-relay event, version {SCHEMA_VERSION}",
        **either.json_schema(),
    }
