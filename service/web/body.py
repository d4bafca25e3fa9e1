"""Reading a request's body: a callback's parameters (size limit, content type and encoding),
or a management API request's JSON document as its model.

Plivo sends form-encoded POST bodies or GET query strings, and some API callbacks as JSON. All
values are strings. Anything else is refused with a status and a message that names the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from service.domain.problems import Invalid, invalid
from service.web.http_limits import body_limit, body_too_large

MAX_FIELDS = 500
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

Pairs = list[tuple[str, str]]


@dataclass(frozen=True)
class CallbackParams:
    """What a callback request carried: query and body pairs as sent, and both merged."""

    query: Pairs
    body: Pairs

    def merged(self) -> dict[str, str]:
        """One value per name (the first one), body over query."""
        params: dict[str, str] = {}
        for key, value in [*self.body, *self.query]:
            params.setdefault(key, value)
        return params


def _unquote(text: str) -> str:
    """`unquote_plus`, strict about UTF-8, quick for the values that need nothing."""
    if "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8")


def _pairs(raw: bytes, where: str) -> Pairs:
    """Form/query decoding (as `parse_qsl`, blank values kept) that refuses bad UTF-8.

    Written out because it is the hottest code of the ingestion path: most Plivo values need
    no unquoting at all.
    """
    if not raw:
        return []
    try:
        fields = raw.decode("utf-8").split("&")
        if len(fields) > MAX_FIELDS:
            raise HTTPException(400, f"{where} has more than {MAX_FIELDS} fields")
        pairs = []
        for field in fields:
            if field:
                name, _, value = field.partition("=")
                if "%" in field or "+" in field:
                    name, value = _unquote(name), _unquote(value)
                if not name:
                    raise HTTPException(400, f"{where} has a parameter with an empty name")
                pairs.append((name, value))
        return pairs
    except UnicodeDecodeError:
        raise HTTPException(400, f"{where} is not valid UTF-8") from None


def json_document(raw: bytes) -> object:
    """A JSON body, or 400 naming what is wrong with it (never a 500, however it is nested)."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "body is not valid JSON") from None
    except RecursionError:
        raise HTTPException(400, "body is JSON nested too deeply") from None


def _json_pairs(raw: bytes) -> Pairs:
    document = json_document(raw)
    if not isinstance(document, dict):
        raise HTTPException(400, "JSON body must be an object")
    pairs: Pairs = []
    for key, value in document.items():
        if not key:
            raise HTTPException(400, "body has a parameter with an empty name")
        if value is None:
            continue
        if isinstance(value, (dict, list)):
            raise HTTPException(400, f"JSON field {key[:40]!r} must be a string or a number")
        # Plivo's SDKs sign non-string values as Python's str() of them.
        pairs.append((key, value if isinstance(value, str) else str(value)))
    return pairs


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The request body, refusing (413) anything over `limit` (by default its path's: see
    `service.web.http_limits`, which refuses it before the app when uvicorn serves it) before or
    while reading it."""
    if limit is None:
        limit = body_limit(request.scope.get("raw_path") or request.url.path.encode())
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise HTTPException(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise HTTPException(413, body_too_large(limit))
    chunks = []
    size = 0
    while True:  # what `request.stream()` does, without an async generator per request
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, body_too_large(limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def read_params(request: Request) -> CallbackParams:
    """Parse the query string and the body of a callback request."""
    query = _pairs(request.scope.get("query_string", b""), "query string")
    if request.method == "GET":
        return CallbackParams(query=query, body=[])
    body = await read_body(request)
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == FORM or (not content_type and not body):
        return CallbackParams(query=query, body=_pairs(body, "body"))
    if content_type == JSON:
        return CallbackParams(query=query, body=_json_pairs(body))
    raise HTTPException(
        415, f"unsupported content type {content_type[:60]!r}: use {FORM} or {JSON}"
    )


async def read_json(request: Request, model: type[BaseModel]) -> Any:
    """The request's JSON body as `model`; 400 if it is not JSON, `Invalid` naming the field."""
    document = json_document(await read_body(request) or b"{}")
    if not isinstance(document, dict):
        raise Invalid("body", "must be a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise invalid(error) from None
