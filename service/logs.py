"""Log set-up shared by the web and worker processes: one line per event, to stderr.

`LOG_FORMAT=text` (the default) writes `time LEVEL logger: message`; `LOG_FORMAT=json` one JSON
object a line: `time`, `level`, `logger`, `message`, and whichever of `FIELDS` the line is
about (pass them as `extra=`, see `about`). uvicorn's and arq's lines go through the same
handler, so they come out in the same format.

Log lines carry strings that callers chose (paths, ids, URLs, error texts), so every line is
written with its control characters escaped (`\\x00`, `\\r`, `\\n` ...): a caller can neither
forge a line nor hide one. In text a traceback, which is the relay's own text, keeps its lines;
in JSON it is the `exception` field.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")
# What a line may be about, as JSON fields of their own.
FIELDS = (
    "recording_id",
    "subscription_id",
    "webhook_id",
    "event_type",
    "stage",
    "reason",
    "status",
    "error",
    "endpoint",
)
# C0 controls, DEL, C1 controls and Unicode's line and paragraph separators, each written as
# its Python escape.
ESCAPES = {
    code: chr(code).encode("unicode_escape").decode()
    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}


def about(**fields: object) -> dict[str, Any]:
    """`extra=` for a log call: the line is about these (None values are left out)."""
    return {name: value for name, value in fields.items() if value is not None}


class OneLineFormatter(logging.Formatter):
    """Each record as one line of text, its fields escaped: no caller's string can forge a line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).translate(ESCAPES)


class JSONFormatter(logging.Formatter):
    """One JSON object a line (`json.dumps` escapes every control character and, ASCII only,
    the line separators too)."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def formatter(log_format: str) -> logging.Formatter:
    return JSONFormatter() if log_format == "json" else OneLineFormatter(FORMAT)


def configure(level: str, log_format: str = "text") -> None:
    """Set up the root logger, unless something (a test runner) already has. uvicorn's and
    arq's loggers propagate to it; httpx's request lines are left to `service.plivo.client`, which
    logs each Plivo request at debug.

    uvicorn's access log stays off: uvicorn writes it whenever `uvicorn.access` has a handler,
    its own or an ancestor's, and its lines would carry query strings (a GET callback's
    parameters) and cost every request a line."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    logging.getLogger("httpx").setLevel(logging.WARNING)
