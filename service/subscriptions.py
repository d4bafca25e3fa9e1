"""Subscriptions: who receives which events, and the secret their webhooks are signed with.

Kept in one Redis hash, `rr:subscriptions` (id -> JSON). Each has its own signing secret
(`whsec_` + base64 of 32 random bytes, as Standard Webhooks asks); rotating it keeps the
previous one signing alongside for 24 hours, so a subscriber can switch without losing a
message.
"""

from __future__ import annotations

import base64
import functools
import secrets
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from service.events import EVENT_TYPES

OPERATIONAL = "subscription.disabled"
EventFilter = Literal[
    "recording.completed", "recording.transcribed", "recording.failed", "subscription.disabled"
]
RECORDING_EVENTS: tuple[EventFilter, ...] = EVENT_TYPES
ROTATION_OVERLAP_S = 24 * 3600
KEY = "rr:subscriptions"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048)
    events: list[EventFilter] = Field(default_factory=lambda: [*RECORDING_EVENTS], min_length=1)
    description: str = Field(default="", max_length=500)


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2048)
    events: list[EventFilter] | None = Field(default=None, min_length=1)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class Subscription(BaseModel):
    id: str
    url: str
    events: list[EventFilter]
    description: str
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
    changes are made with `model_copy`)."""
    return Subscription.model_validate_json(document)


class SubscriptionStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

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

    async def get(self, subscription_id: str) -> Subscription | None:
        raw = await self.redis.hget(KEY, subscription_id)  # type: ignore[misc]
        return None if raw is None else parse(raw)

    async def all(self) -> list[Subscription]:
        raw = await self.redis.hvals(KEY)  # type: ignore[misc]
        found = [parse(item) for item in raw]
        return sorted(found, key=lambda s: s.created_at)

    async def update(self, subscription: Subscription, patch: SubscriptionPatch) -> Subscription:
        changes = patch.model_dump(exclude_unset=True)
        if changes.get("enabled"):
            changes["disabled_reason"] = None
        updated = subscription.model_copy(update={**changes, "updated_at": time.time()})
        await self.save(updated)
        return updated

    async def rotate(self, subscription: Subscription) -> Subscription:
        now = time.time()
        rotated = subscription.model_copy(
            update={
                "secret": new_secret(),
                "previous_secret": subscription.secret,
                "previous_secret_expires_at": now + ROTATION_OVERLAP_S,
                "updated_at": now,
            }
        )
        await self.save(rotated)
        return rotated

    async def delete(self, subscription_id: str) -> bool:
        return bool(await self.redis.hdel(KEY, subscription_id))  # type: ignore[misc]

    async def save(self, subscription: Subscription) -> None:
        await self.redis.hset(KEY, subscription.id, subscription.model_dump_json())  # type: ignore[misc]
