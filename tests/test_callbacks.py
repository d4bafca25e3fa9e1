"""Every shape of Plivo recording callback becomes the same normalised model."""

from __future__ import annotations

import pytest

from service.domain.callbacks import InvalidCallback, Source, parse_recording, parse_transcription
from tests.support.plivo import rid

NOW = 1_700_000_000.0


def test_record_xml_callback() -> None:
    params = {
        "RecordingID": rid("rec-1"),
        "RecordUrl": "https://media.plivo.com/r.mp3",
        "RecordingDuration": "12",
        "RecordingDurationMs": "12340",
        "RecordingStartMs": "1407235163907",
        "RecordingEndMs": "1407235176247",
        "CallUUID": "call-1",
        "ConferenceName": "standup",
    }
    callback = parse_recording(params, "MA", NOW)
    assert callback.source is Source.RECORD_XML
    assert (callback.recording_id, callback.call_uuid) == (rid("rec-1"), "call-1")
    assert callback.duration_ms == 12340  # the ms parameter wins over seconds
    assert (callback.start_ms, callback.end_ms) == (1407235163907, 1407235176247)
    assert callback.conference_name == "standup"
    assert callback.params == params
    assert callback.starts_pipeline


def test_api_callback_with_seconds_only_and_decimal_strings() -> None:
    params = {
        "api_id": "a",
        "record_url": "https://media.plivo.com/r.mp3",
        "recording_id": rid("rec-2"),
        "call_uuid": "call-2",
        "recording_duration": "7",
        "recording_start_ms": "1407235163907.00000",
    }
    callback = parse_recording(params, "MA", NOW)
    assert callback.source is Source.RECORDING_API
    assert callback.duration_ms == 7000
    assert callback.start_ms == 1407235163907
    assert callback.recording_url == "https://media.plivo.com/r.mp3"


@pytest.mark.parametrize(
    ("event", "starts"),
    [
        ("MPCRecordingInitiated", False),
        ("MPCRecordingPaused", False),
        ("MPCRecordingCompleted", True),
    ],
)
def test_multiparty_call_events(event: str, starts: bool) -> None:
    params = {
        "EventName": event,
        "RecordingUUID": rid("rec-3"),
        "RecordingURL": "https://media.plivo.com/r.wav",
        "RecordingDuration": "30",
        "RecordingStartTime": "2023-04-12 09:30:00+00:00",
        "MPCUUID": "mpc-1",
    }
    callback = parse_recording(params, "MA", NOW)
    assert callback.source is Source.MULTIPARTY_CALL
    assert callback.starts_pipeline is starts
    assert callback.duration_ms == 30000
    assert callback.start_ms == 1681291800000
    assert callback.mpc_uuid == "mpc-1"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"CallUUID": "c"}, "missing recording id"),
        (
            {"RecordingID": rid("rec"), "RecordingDuration": "twelve"},
            "RecordingDuration must be a number",
        ),
        ({"recording_id": rid("rec"), "recording_duration_ms": "-5"}, "recording_duration_ms"),
        ({"RecordingID": "a b/../c"}, "RecordingID is not a Plivo recording id"),
        # A signed callback re-split under the same signature (Plivo signs `name + value`
        # with no separator): the id swallows the next parameter.
        (
            {"RecordingID": rid("rec") + "RecordingStartMs1700000000000"},
            "RecordingID is not a Plivo recording id",
        ),
        ({"RecordingID": rid("rec") + ":callbacks"}, "RecordingID is not a Plivo recording id"),
        ({"recording_id": "rec:1"}, "recording_id is not a Plivo recording id"),
        ({"RecordingUUID": "x" * 36}, "RecordingUUID is not a Plivo recording id"),
        ({"EventName": "MPCRecordingCompleted"}, "missing RecordingUUID"),
    ],
)
def test_bad_callbacks_name_the_parameter(params: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidCallback, match=message):
        parse_recording(params, "MA", NOW)


def test_transcription_callback() -> None:
    params = {
        "recording_id": rid("rec-1"),
        "call_uuid": "call-1",
        "transcription": "Hello there.",
        "duration": "12",
        "transcription_charge": "0.05",
        "transcription_rate": "0.05",
        "error": "",
    }
    callback = parse_transcription(params, "MA", NOW)
    assert callback.transcription == "Hello there."
    assert (callback.duration_ms, callback.charge, callback.error) == (12000, 0.05, None)
    failed = parse_transcription(
        {"recording_id": rid("rec-1"), "error": "Recording duration too long for transcription"},
        "MA",
        NOW,
    )
    assert failed.error == "Recording duration too long for transcription"
    with pytest.raises(InvalidCallback, match="missing recording_id"):
        parse_transcription({"transcription": "x"}, "MA", NOW)
