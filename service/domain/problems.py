"""What the relay refuses, in its own words: the errors its operations raise.

Each names the problem for the caller; the web layer (`service.web.errors`) and the dashboard
turn them into status codes and pages. Nothing here knows HTTP.
"""

from __future__ import annotations

from pydantic import ValidationError


class Problem(Exception):
    """A request the relay cannot carry out; the message says why, for the caller."""


class NotFound(Problem):
    """What was asked for is unknown to the relay."""


class Invalid(Problem):
    """A value the caller gave is wrong; the message starts with the field it is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Conflict(Problem):
    """The request cannot be carried out in the state things are in (a limit, an unreadable
    record)."""


class Gone(Problem):
    """What was asked for existed and was erased on purpose."""


class Unauthorized(Problem):
    """The caller did not show a token the relay accepts."""


class Throttled(Problem):
    """The caller, or everyone, failed too often: it may try again after `retry_after` s."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def first_problem(error: ValidationError, whole: str) -> tuple[str, str]:
    """The field a validation error is about (`whole` when it is about the whole document) and
    what is wrong with it, for a message that names the field."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or whole
    return field, first["msg"].removeprefix("Value error, ")


def invalid(error: ValidationError, whole: str = "body") -> Invalid:
    """The first problem of `error` as an `Invalid` that names its field."""
    return Invalid(*first_problem(error, whole))
