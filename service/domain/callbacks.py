"""Plivo's callbacks, normalised: one validated model per callback whatever shape it came in.

Plivo names the same facts differently depending on what made the recording: the `<Record>` XML
element (PascalCase), the Record-a-Call/Conference API (snake_case), or a MultiPartyCall
(`RecordingUUID`, `EventName`). `parse_recording` and `parse_transcription` turn the raw
parameters into models with numbers as numbers, and keep the raw parameters alongside.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

MPC_COMPLETED = "MPCRecordingCompleted"


class InvalidCallback(ValueError):
    """A callback that cannot be used; the message names the parameter at fault."""


class Source(StrEnum):
    """The shape the relay learned of a recording in."""

    RECORD_XML = "record_xml"
    RECORDING_API = "recording_api"
    MULTIPARTY_CALL = "multiparty_call"
    LISTED = "listed"  # a Recording object of Plivo's List Recordings API, no callback


class Origin(StrEnum):
    """Why the relay took a recording up (`source` in its status and events)."""

    CALLBACK = "callback"  # Plivo's callback
    RECONCILIATION = "reconciliation"  # a sweep found it (`workers.reconciliation`)
    BACKFILL = "backfill"  # an operator's backfill found it


class RecordingCallback(BaseModel):
    """A recording callback, whatever its source."""

    model_config = ConfigDict(frozen=True)

    source: Source
    recording_id: str
    call_uuid: str | None = None
    recording_url: str | None = None
    recording_format: str | None = None
    duration_ms: int | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    conference_name: str | None = None
    conference_uuid: str | None = None
    mpc_name: str | None = None
    mpc_uuid: str | None = None
    event_name: str | None = None
    # The Plivo account (main or subaccount) whose token signed the callback.
    auth_id: str
    received_at: float
    params: dict[str, str]
    origin: Origin = Origin.CALLBACK
    transcribe: bool = True  # False: archive and announce it, buy no transcription

    @property
    def recorded_ms(self) -> int | None:
        """When the recording was made (epoch ms), as far as the callback says."""
        return self.end_ms or self.start_ms

    @property
    def starts_pipeline(self) -> bool:
        """Only a finished recording starts work; other MultiPartyCall events are just logged."""
        return self.source is not Source.MULTIPARTY_CALL or self.event_name == MPC_COMPLETED


class TranscriptionCallback(BaseModel):
    """Plivo's transcription callback: the text, or the reason there is none."""

    model_config = ConfigDict(frozen=True)

    recording_id: str
    call_uuid: str | None = None
    transcription: str | None = None
    duration_ms: int | None = None
    charge: float | None = None
    rate: float | None = None
    error: str | None = None
    auth_id: str
    received_at: float
    params: dict[str, str]


# Plivo's recording ids (`RecordingID`, `recording_id`) and MultiPartyCall `RecordingUUID`s are
# UUIDs. Holding ids to that shape matters beyond tidiness: Plivo's POST signature concatenates
# sorted `name + value` pairs with no separator, so a captured callback can be re-split
# (`RecordingID=<id>RecordingStartMs1700...`) under the same signature; the re-split id is no
# UUID. An id also names Redis keys, and a UUID cannot name another recording's key.
RECORDING_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_recording_id(value: str) -> bool:
    """Whether `value` is a recording id as the relay stores them (a lowercase UUID)."""
    return RECORDING_ID.fullmatch(value) is not None


def _recording_id(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise InvalidCallback(f"missing {name}")
    if not RECORDING_ID.fullmatch(value.lower()):
        raise InvalidCallback(f"{name} is not a Plivo recording id (a UUID): {value[:40]!r}")
    return value.lower()


def _text(params: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = params.get(name, "").strip()
        if value:
            return value
    return None


def _number(params: Mapping[str, str], name: str) -> float | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidCallback(f"{name} must be a number, got {raw[:40]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise InvalidCallback(f"{name} must be a non-negative number, got {raw[:40]!r}")
    return value


def _ms(params: Mapping[str, str], ms_name: str, seconds_name: str | None = None) -> int | None:
    """A duration or epoch time in whole milliseconds, from a `...Ms` parameter or a seconds one."""
    value = _number(params, ms_name)
    if value is not None:
        return round(value)
    if seconds_name is not None:
        seconds = _number(params, seconds_name)
        if seconds is not None:
            return round(seconds * 1000)
    return None


def _time_ms(params: Mapping[str, str], name: str) -> int | None:
    """A MultiPartyCall time (`2023-04-12 09:30:00+00:00` or epoch seconds), as epoch ms.

    Plivo does not document these formats tightly, so an unreadable one becomes None (the raw
    value stays in `params`) rather than rejecting a finished recording.
    """
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        return round(float(raw) * 1000)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw.replace(" UTC", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.now().astimezone().tzinfo).astimezone()
    return round(moment.timestamp() * 1000)


def _recording_fields(params: Mapping[str, str]) -> dict[str, object]:
    """Which kind of recording callback `params` is, and its facts under common names."""
    if _text(params, "RecordingUUID") or params.get("EventName", "").startswith("MPC"):
        return {
            "source": Source.MULTIPARTY_CALL,
            "recording_id": _recording_id(params, "RecordingUUID"),
            "recording_url": _text(params, "RecordingURL"),
            "recording_format": _text(params, "RecordingFormat"),
            "duration_ms": _ms(params, "RecordingDurationMs", "RecordingDuration"),
            "start_ms": _time_ms(params, "RecordingStartTime"),
            "end_ms": _time_ms(params, "RecordingEndTime"),
            "mpc_name": _text(params, "MPCName"),
            "mpc_uuid": _text(params, "MPCUUID"),
            "event_name": _text(params, "EventName"),
        }
    if _text(params, "RecordingID"):
        return {
            "source": Source.RECORD_XML,
            "recording_id": _recording_id(params, "RecordingID"),
            "call_uuid": _text(params, "CallUUID"),
            "recording_url": _text(params, "RecordUrl", "RecordURL"),
            "duration_ms": _ms(params, "RecordingDurationMs", "RecordingDuration"),
            "start_ms": _ms(params, "RecordingStartMs"),
            "end_ms": _ms(params, "RecordingEndMs"),
            "conference_name": _text(params, "ConferenceName"),
            "conference_uuid": _text(params, "ConferenceUUID"),
        }
    if _text(params, "recording_id"):
        return {
            "source": Source.RECORDING_API,
            "recording_id": _recording_id(params, "recording_id"),
            "call_uuid": _text(params, "call_uuid"),
            "recording_url": _text(params, "record_url", "recording_url"),
            "duration_ms": _ms(params, "recording_duration_ms", "recording_duration"),
            "start_ms": _ms(params, "recording_start_ms"),
            "end_ms": _ms(params, "recording_end_ms"),
            "conference_name": _text(params, "conference_name"),
        }
    raise InvalidCallback(
        "missing recording id: expected RecordingID, recording_id or RecordingUUID"
    )


def parse_recording(params: dict[str, str], auth_id: str, received_at: float) -> RecordingCallback:
    """Recognise which kind of recording callback `params` is and normalise it."""
    fields = _recording_fields(params)
    return RecordingCallback.model_validate(
        {**fields, "auth_id": auth_id, "received_at": received_at, "params": params}
    )


def from_listed(
    recording: dict[str, object], auth_id: str, origin: Origin, transcribe: bool, now: float
) -> RecordingCallback:
    """A recording found in Plivo's List Recordings API (numbers as numbers), as the callback
    Plivo did not deliver; `InvalidCallback` if it has no usable id."""

    def whole(name: str) -> int | None:
        value = recording.get(name)
        return round(value) if isinstance(value, (int, float)) else None

    def text(name: str) -> str | None:
        value = recording.get(name)
        return str(value) if value else None

    recording_id = str(recording.get("recording_id", "")).lower()
    if not is_recording_id(recording_id):
        raise InvalidCallback(f"a listed recording has no Plivo id: {recording_id[:40]!r}")
    return RecordingCallback(
        source=Source.LISTED,
        recording_id=recording_id,
        call_uuid=text("call_uuid"),
        recording_url=text("recording_url"),
        recording_format=text("recording_format"),
        duration_ms=whole("recording_duration_ms"),
        start_ms=whole("recording_start_ms"),
        end_ms=whole("recording_end_ms"),
        conference_name=text("conference_name"),
        auth_id=auth_id,
        received_at=now,
        params={},
        origin=origin,
        transcribe=transcribe,
    )


def parse_transcription(
    params: dict[str, str], auth_id: str, received_at: float
) -> TranscriptionCallback:
    """Normalise Plivo's transcription callback (always snake_case)."""
    return TranscriptionCallback(
        recording_id=_recording_id(params, "recording_id"),
        call_uuid=_text(params, "call_uuid"),
        transcription=params.get("transcription") or None,
        duration_ms=_ms(params, "duration_ms", "duration"),
        charge=_number(params, "transcription_charge"),
        rate=_number(params, "transcription_rate"),
        error=_text(params, "error"),
        auth_id=auth_id,
        received_at=received_at,
        params=params,
    )
