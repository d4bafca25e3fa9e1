"""Logs: `LOG_FORMAT=json` lines, the lines an operator needs, and no secret in any of them."""

from __future__ import annotations

import json
import logging

import pytest

from service.logs import JSONFormatter, OneLineFormatter, about, configure
from tests.support.pipeline_env import running_relay
from tests.support.receivers import Receiver
from tests.support.settings import ADMIN_TOKEN, AUTH_TOKEN, SUB_AUTH_TOKEN
from tests.test_delivery import FAST, received, subscriber


def record(message: str, *args: object, **fields: object) -> logging.LogRecord:
    made = logging.LogRecord(
        "recording_relay.test", logging.WARNING, __file__, 1, message, args, None
    )
    made.__dict__.update(about(**fields))
    return made


def test_a_json_line_is_one_object_with_the_fields_it_is_about() -> None:
    line = JSONFormatter().format(
        record("attempt failed: %s", "HTTP 500\nforged line", subscription_id="sub_1", status=500)
    )
    assert "\n" not in line
    document = json.loads(line)
    assert document["level"] == "warning"
    assert document["logger"] == "recording_relay.test"
    assert document["message"] == "attempt failed: HTTP 500\nforged line"
    assert document["subscription_id"] == "sub_1" and document["status"] == 500
    assert document["time"].endswith("Z")
    assert "recording_id" not in document  # only what the line is about


def test_a_text_line_escapes_what_callers_chose() -> None:
    line = OneLineFormatter("%(message)s").format(record("path %s", "/a\r\nFAKE ERROR"))
    assert line == "path /a\\r\\nFAKE ERROR"


def test_uvicorns_lines_go_through_the_relays_handler_and_its_access_log_stays_off() -> None:
    configure("info", "json")
    assert logging.getLogger("uvicorn.error").hasHandlers()  # the root's: JSON like the rest
    # uvicorn logs every request (query strings included) when this logger has a handler.
    assert not logging.getLogger("uvicorn.access").hasHandlers()


def test_log_format_must_be_text_or_json() -> None:
    from tests.support.settings import make_settings

    assert make_settings("redis://127.0.0.1:1/0", log_format="JSON").log_format == "json"
    with pytest.raises(ValueError, match="log_format"):
        make_settings("redis://127.0.0.1:1/0", log_format="xml")


async def test_failures_are_logged_with_their_ids_and_no_secret_anywhere(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_relay(redis_url, **FAST) as relay:
        receiver = Receiver(answers=[500, 200])
        async with subscriber(relay, receiver) as subscription:
            recording_id = await relay.call()
            assert (await relay.settled(recording_id))["status"] == "transcribed"
            await received(receiver, 4)
            relay.faults.transcription_error = "Recording duration too long for transcription"
            failing = await relay.call()
            assert (await relay.settled(failing))["status"] == "failed"

    records = caplog.records
    # A subscriber answering 500: a warning naming the subscription, the status and the error.
    [failed_attempt] = [
        r for r in records if r.levelno == logging.WARNING and getattr(r, "status", None) == 500
    ]
    assert failed_attempt.__dict__["subscription_id"] == subscription["id"]
    assert failed_attempt.__dict__["error"] == "HTTP 500"
    assert failed_attempt.__dict__["webhook_id"].startswith("msg_")
    assert failed_attempt.__dict__["event_type"] == "recording.completed"
    # recording.failed: its stage and Plivo's reason.
    [failure] = [r for r in records if getattr(r, "stage", None) == "transcription"]
    assert failure.levelno == logging.WARNING
    assert failure.__dict__["recording_id"] == failing
    assert failure.__dict__["reason"] == "Recording duration too long for transcription"
    # Plivo's requests at debug, each once, and no request line of httpx's at info.
    plivo = [r for r in records if r.name == "recording_relay.plivo"]
    assert plivo and all(r.levelno == logging.DEBUG for r in plivo)
    assert not [r for r in records if r.name == "httpx" and r.levelno >= logging.INFO]

    secrets_ = [AUTH_TOKEN, SUB_AUTH_TOKEN, ADMIN_TOKEN, subscription["secret"]]
    formatter = JSONFormatter()
    for line in (formatter.format(r) for r in records):
        for secret in secrets_:
            assert secret not in line
        assert "whsec_" not in line
