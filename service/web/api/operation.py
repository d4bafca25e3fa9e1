"""How a handler of the management API says what it is, beside its code: `@documented(...)`
attaches an `Operation` (its id, summary, body, query parameters and answers) that the OpenAPI
document (`service.web.api.openapi`) reads off the route table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from service.operations.paging import MAX_LIMIT

ERROR = {"$ref": "#/components/schemas/Error"}
Schema = dict[str, Any] | type[BaseModel] | type | None
# An answer: its description and, when it has a JSON body, the body's model or schema.
Answer = str | tuple[str, Schema] | dict[str, Any]  # a dict: the whole answer, written out

PAGE: tuple[dict[str, Any], ...] = (
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
    {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
)
# What every operation behind the admin token may answer besides its own.
COMMON: dict[int, Answer] = {
    401: ("missing or wrong bearer token", ERROR),
    429: ("too many wrong tokens from this address (or in all) this minute: Retry-After", ERROR),
    503: ("Redis is unreachable: nothing was changed; retry later", ERROR),
}
BAD_BODY: dict[int, Answer] = {
    400: ("the body is not JSON", ERROR),
    422: ("invalid input; the error names the field", ERROR),
}
BAD_PAGE: dict[int, Answer] = {422: ("a bad limit or cursor", ERROR)}


@dataclass(frozen=True)
class Operation:
    """One operation of the API, as the OpenAPI document describes it."""

    id: str
    answers: dict[int, Answer]
    summary: str = ""
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: tuple[dict[str, Any], ...] = ()
    links: dict[str, Any] = field(default_factory=dict)
    path_parameters: dict[str, str] = field(default_factory=dict)  # name: description
    public: bool = False  # no admin token: its own answers only
    extra: dict[str, Any] = field(default_factory=dict)  # raw OpenAPI fields (`links`, ...)


Handler = TypeVar("Handler", bound=Callable[..., Any])


def documented(
    operation_id: str, answers: dict[int, Answer], **details: Any
) -> Callable[[Handler], Handler]:
    """Attach the handler's `Operation` (read by `service.web.api.openapi`)."""

    def attach(handler: Handler) -> Handler:
        handler.__operation__ = Operation(operation_id, answers, **details)  # type: ignore[attr-defined]
        return handler

    return attach


def operation_of(endpoint: Callable[..., Any]) -> Operation | None:
    """The `Operation` a handler was documented with, if any."""
    found = getattr(endpoint, "__operation__", None)
    return found if isinstance(found, Operation) else None
