"""Subscriptions: who receives which events, and the secret their webhooks are signed with.

Each has its own signing secret (`whsec_` + base64 of 32 random bytes, as Standard Webhooks
asks); rotating it keeps the previous one signing alongside for 24 hours, so a subscriber can
switch without losing a message. `Subscription` is the whole record as stored
(`service.storage.subscriptions`): every change is validated whole (`changed`).
"""

from __future__ import annotations

import base64
import functools
import re
import secrets
import time
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from service.domain import content_filter
from service.domain.endpoint_auth import Auth, ClientTLS, NoAuth
from service.domain.events import ERASED, EVENT_TYPES
from service.domain.text import PlainText
from service.domain.urls import check_url

OPERATIONAL: Literal["subscription.disabled"] = "subscription.disabled"
EventFilter = Literal[
    "recording.completed",
    "recording.transcribed",
    "recording.failed",
    "recording.archived",
    "recording.erased",
    "subscription.disabled",
]
# What a new subscription gets unless it says: a recording's events, its erasure included.
RECORDING_EVENTS: tuple[EventFilter, ...] = (*EVENT_TYPES, ERASED)
ROTATION_OVERLAP_S = 24 * 3600
URL = Annotated[
    str,
    Field(
        max_length=2048,
        json_schema_extra={"format": "uri", "examples": ["https://hooks.example.com/plivo"]},
    ),
    AfterValidator(check_url),
]
Description = Annotated[PlainText, Field(max_length=500)]
RateLimit = Annotated[
    float,
    Field(
        ge=0.01,  # one every 100 s
        le=1000,
        description="webhooks a second at most, evenly spaced (replays and recoveries too); "
        "beyond it they wait in the queue, in order, neither failed nor dropped",
        json_schema_extra={"examples": [5]},
    ),
]
Events = Annotated[list[EventFilter], Field(min_length=1)]


def _checked_filter(spec: dict[str, Any]) -> dict[str, Any]:
    content_filter.check(spec)
    return spec


HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")
# Headers a subscription may not set: what signs and frames the webhook, and hop-by-hop ones.
RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
        "content-length",
        "content-encoding",
        "host",
        "user-agent",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
MAX_HEADERS = 20


def _checked_headers(headers: dict[str, str]) -> dict[str, str]:
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    for name, value in headers.items():
        if not HEADER_NAME.fullmatch(name):
            raise ValueError(f"{name[:40]!r} is not a header name")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"{name} is the relay's to send, not a subscription's")
        if len(value) > 1000 or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError(f"{name}: a value of at most 1000 characters, no control characters")
    return headers


Headers = Annotated[
    dict[str, str],
    Field(
        description="sent with every attempt (an API key, ...); write-only: answers show each "
        'value as "***"',
        json_schema_extra={"examples": [{"X-Api-Key": "..."}]},
    ),
    AfterValidator(_checked_headers),
]
Filter = Annotated[
    dict[str, Any],
    Field(
        description="which events of its types it receives, by their content: dotted paths "
        "to a value or to operators ($eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $prefix, "
        "$exists), combined with $and, $or, $not; {} receives them all",
        json_schema_extra={"examples": [{"data.recording.recording_duration_ms": {"$gte": 30000}}]},
    ),
    AfterValidator(_checked_filter),
]


Authorized = TypeVar("Authorized", "SubscriptionCreate", "Subscription")


def one_authorization(subscription: Authorized) -> Authorized:
    """A subscription's `auth` sends `Authorization`: its `headers` may not too."""
    if subscription.auth is not None and any(
        name.lower() == "authorization" for name in subscription.headers
    ):
        raise ValueError("headers: Authorization is its auth's to send; drop one of them")
    return subscription


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class SubscriptionCreate(BaseModel):
    """A subscription as asked for (`POST /v1/subscriptions`)."""

    model_config = ConfigDict(extra="forbid")

    url: URL
    events: Events = Field(default_factory=lambda: [*RECORDING_EVENTS])
    description: Description = ""
    filter: Filter = Field(default_factory=dict)
    headers: Headers = Field(default_factory=dict)
    rate_limit: RateLimit | None = None
    auth: Auth | None = Field(default=None, description="basic or oauth2; write-only secrets")
    tls: ClientTLS | None = Field(default=None, description="mutual TLS and a private CA (PEM)")

    @model_validator(mode="after")
    def _one_authorization(self) -> SubscriptionCreate:
        return one_authorization(self)


class SubscriptionPatch(BaseModel):
    """The fields to change; each may be left out, none may be null."""

    model_config = ConfigDict(extra="forbid")

    url: URL | None = None
    events: Events | None = None
    description: Description | None = None
    enabled: bool | None = None
    filter: Filter | None = None
    headers: Headers | None = None
    rate_limit: Annotated[float, Field(ge=0, le=1000)] | None = Field(
        default=None, description="webhooks a second at most; 0 removes the limit"
    )
    auth: Auth | NoAuth | None = Field(
        default=None, description='the authentication, whole; {"type": "none"} removes it'
    )
    tls: ClientTLS | None = Field(
        default=None, description="the TLS settings, whole; {} removes them"
    )


class Subscription(BaseModel):
    """A subscription as stored: every write validates the whole of it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    url: URL
    events: Events
    description: Description
    enabled: bool = True
    filter: Filter = Field(default_factory=dict)
    headers: Headers = Field(default_factory=dict)
    rate_limit: RateLimit | None = None
    auth: Auth | None = None
    tls: ClientTLS | None = None
    secret: str
    previous_secret: str | None = None
    previous_secret_expires_at: float | None = None
    created_at: float
    updated_at: float
    disabled_reason: str | None = None

    def signing_secrets(self, now: float | None = None) -> list[str]:
        """The secrets webhooks are signed with now: the current one, and the previous one
        during the 24 hours after a rotation."""
        now = time.time() if now is None else now
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and now < expires:
            return [self.secret, self.previous_secret]
        return [self.secret]

    @model_validator(mode="after")
    def _one_authorization(self) -> Subscription:
        return one_authorization(self)

    @property
    def spacing_ms(self) -> int:
        """The least time between two of its webhooks (ms); 0 when it has no rate limit."""
        return max(1, min(100_000, round(1000 / self.rate_limit))) if self.rate_limit else 0

    def wants(self, event_type: str) -> bool:
        return self.enabled and event_type in self.events

    def accepts(self, event: dict[str, Any]) -> bool:
        """Whether the event's content passes the subscription's filter."""
        return not self.filter or content_filter.matches(self.filter, event)


@functools.lru_cache(maxsize=4096)
def parse(document: str | bytes) -> Subscription:
    """A subscription from its stored JSON, parsed once per version of it (treat as frozen:
    changes are made with `changed`). `ValidationError` if it is unreadable."""
    return Subscription.model_validate_json(document)


def changed(subscription: Subscription, **changes: object) -> Subscription:
    """`subscription` with `changes`, the whole result validated (`ValidationError` names the
    field at fault)."""
    return Subscription.model_validate({**subscription.model_dump(), **changes})
