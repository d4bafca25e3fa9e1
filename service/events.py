"""The events the relay emits: the contract downstream services rely on.

Every event is `{"type", "timestamp", "data"}` (Standard Webhooks' convention). `data` always
has `recording_id`, `call_uuid`, `recording` (Plivo's Recording object, numbers as numbers, or
null when it could not be fetched) and `callback` (the original callback parameters);
`recording.transcribed` adds `transcription`, `recording.failed` adds `stage` and `reason`.
`subscription.disabled` has `subscription_id`, `url` (no credentials, query or fragment) and
`reason`. The JSON Schema of both is `docs/events.v1.schema.json`; a change to these models is
a new version (an additive one, a new event type, is not).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1
EventType = Literal["recording.completed", "recording.transcribed", "recording.failed"]
COMPLETED: EventType = "recording.completed"
TRANSCRIBED: EventType = "recording.transcribed"
FAILED: EventType = "recording.failed"
EVENT_TYPES: tuple[EventType, ...] = (COMPLETED, TRANSCRIBED, FAILED)


class Transcript(BaseModel):
    """The three forms of a transcript, each as Plivo returned it, and what it cost."""

    model_config = ConfigDict(extra="forbid")

    transcription: Any = Field(description="type=transcription: Plivo's answer (or callback)")
    raw: Any = Field(description="type=raw: Plivo's answer")
    diarized: Any = Field(description="type=diarized: Plivo's answer")
    cost: float | None = None
    rate: float | None = None


class EventData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording_id: str
    call_uuid: str | None
    recording: dict[str, Any] | None = Field(description="Plivo's Recording object")
    callback: dict[str, str] = Field(description="the recording callback's original parameters")
    transcription: Transcript | None = None
    stage: str | None = Field(default=None, description="recording.failed: the step that failed")
    reason: str | None = Field(default=None, description="recording.failed: Plivo's reason")


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: EventType
    timestamp: str = Field(description="ISO 8601, UTC")
    data: EventData


class DisabledData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscription_id: str
    url: str = Field(description="the subscription's URL without credentials, query or fragment")
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


def json_schema() -> dict[str, Any]:
    """Every event the relay sends, one of them by its `type`."""
    either = TypeAdapter(Annotated[Event | SubscriptionDisabled, Field(discriminator="type")])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://recording-relay/events.v{SCHEMA_VERSION}.schema.json",
        "title": f"recording-relay event, version {SCHEMA_VERSION}",
        **either.json_schema(),
    }
