"""Subscriptions: who receives which events, and the secret their webhooks are signed with.

Kept in one Redis hash, `rr:subscriptions` (id -> JSON), at most `SUBSCRIPTIONS_MAX` of them.
Each has its own signing secret (`whsec_` + base64 of 32 random bytes, as Standard Webhooks
asks); rotating it keeps the previous one signing alongside for 24 hours, so a subscriber can
switch without losing a message.

Every write validates the whole record it stores (`Subscription`), so the API can never store
what the relay cannot read back. A record that still fails to parse (changed by hand, or by an
older version) is skipped and reported (`Unreadable`): it never stops other subscribers'
deliveries or the pipeline, and it can still be deleted.
"""

from __future__ import annotations

import base64
import functools
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis

from service.events import EVENT_TYPES
from service.urls import check_url

OPERATIONAL: Literal["subscription.disabled"] = "subscription.disabled"
EventFilter = Literal[
    "recording.completed", "recording.transcribed", "recording.failed", "subscription.disabled"
]
RECORDING_EVENTS: tuple[EventFilter, ...] = EVENT_TYPES
ROTATION_OVERLAP_S = 24 * 3600
KEY = "rr:subscriptions"
log = logging.getLogger("recording_relay.subscriptions")
URL = Annotated[
    str,
    Field(
        max_length=2048,
        json_schema_extra={"format": "uri", "examples": ["https://hooks.example.com/plivo"]},
    ),
    AfterValidator(check_url),
]
Description = Annotated[str, Field(max_length=500)]
Events = Annotated[list[EventFilter], Field(min_length=1)]

# Store a subscription unless it is new and the limit is reached. KEYS: the hash. ARGV: id,
# JSON, limit. Returns 1 if stored.
SAVE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3])
then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: URL
    events: Events = Field(default_factory=lambda: [*RECORDING_EVENTS])
    description: Description = ""


class SubscriptionPatch(BaseModel):
    """The fields to change; each may be left out, none may be null."""

    model_config = ConfigDict(extra="forbid")

    url: URL | None = None
    events: Events | None = None
    description: Description | None = None
    enabled: bool | None = None


class Subscription(BaseModel):
    """A subscription as stored: every write validates the whole of it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    url: URL
    events: Events
    description: Description
    enabled: bool = True
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

    def wants(self, event_type: str) -> bool:
        return self.enabled and event_type in self.events


@functools.lru_cache(maxsize=4096)
def parse(document: str | bytes) -> Subscription:
    """A subscription from its stored JSON, parsed once per version of it (treat as frozen:
    changes are made with `changed`). `ValidationError` if it is unreadable."""
    return Subscription.model_validate_json(document)


def changed(subscription: Subscription, **changes: object) -> Subscription:
    """`subscription` with `changes`, the whole result validated (`ValidationError` names the
    field at fault)."""
    return Subscription.model_validate({**subscription.model_dump(), **changes})


@dataclass(frozen=True)
class Unreadable:
    """A stored subscription that does not parse: skipped everywhere, shown by the API."""

    id: str
    error: str


def _problem(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "record"
    return f"{field}: {first['msg']}"


class LimitReached(Exception):
    """No new subscription: `SUBSCRIPTIONS_MAX` are stored already."""


class SubscriptionStore:
    def __init__(self, redis: Redis, limit: int = 1000) -> None:
        self.redis = redis
        self.limit = limit
        self._save = redis.register_script(SAVE)

    async def create(self, request: SubscriptionCreate) -> Subscription:
        now = time.time()
        subscription = Subscription(
            id="sub_" + secrets.token_hex(12),
            url=request.url,
            events=list(dict.fromkeys(request.events)),
            description=request.description,
            secret=new_secret(),
            created_at=now,
            updated_at=now,
        )
        await self.save(subscription)
        return subscription

    async def get(self, subscription_id: str) -> Subscription | Unreadable | None:
        raw = await self.redis.hget(KEY, subscription_id)  # type: ignore[misc]
        return None if raw is None else _read(subscription_id, raw)

    async def scan(self) -> tuple[list[Subscription], list[Unreadable]]:
        """Every subscription, oldest first, and the stored records that do not parse."""
        raw = await self.redis.hgetall(KEY)  # type: ignore[misc]
        found: list[Subscription] = []
        unreadable: list[Unreadable] = []
        for key, document in raw.items():
            record = _read(key.decode(errors="replace"), document)
            if isinstance(record, Unreadable):
                unreadable.append(record)
            else:
                found.append(record)
        found.sort(key=lambda s: (s.created_at, s.id))
        return found, unreadable

    async def all(self) -> list[Subscription]:
        """Every subscription that parses, oldest first (the others are logged)."""
        return (await self.scan())[0]

    async def update(self, subscription: Subscription, patch: SubscriptionPatch) -> Subscription:
        """`ValidationError` if the result would not be a valid subscription."""
        changes = patch.model_dump(exclude_unset=True)
        if changes.get("enabled"):
            changes["disabled_reason"] = None
        updated = changed(subscription, **changes, updated_at=time.time())
        await self.save(updated)
        return updated

    async def rotate(self, subscription: Subscription) -> Subscription:
        now = time.time()
        rotated = changed(
            subscription,
            secret=new_secret(),
            previous_secret=subscription.secret,
            previous_secret_expires_at=now + ROTATION_OVERLAP_S,
            updated_at=now,
        )
        await self.save(rotated)
        return rotated

    async def delete(self, subscription_id: str) -> bool:
        return bool(await self.redis.hdel(KEY, subscription_id))  # type: ignore[misc]

    async def save(self, subscription: Subscription) -> None:
        """Store `subscription` (valid by construction); `LimitReached` for one too many."""
        document = Subscription.model_validate(subscription.model_dump()).model_dump_json()
        if not await self._save(keys=[KEY], args=[subscription.id, document, self.limit]):
            raise LimitReached(f"at most {self.limit} subscriptions (SUBSCRIPTIONS_MAX)")


def _read(subscription_id: str, document: bytes) -> Subscription | Unreadable:
    try:
        return parse(document)
    except ValidationError as error:
        problem = _problem(error)
        log.error("subscription %s is unreadable and skipped: %s", subscription_id, problem)
        return Unreadable(subscription_id, problem)
