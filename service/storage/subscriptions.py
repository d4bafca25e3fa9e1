"""The subscriptions' store: one Redis hash (`keys.SUBSCRIPTIONS`, id -> JSON), at most
`SUBSCRIPTIONS_MAX` entries; beside it, each rate-limited one's spacing (`keys.SPACING`), which
the delivery scripts read.

Every write validates the whole record it stores (`Subscription`), so the API can never store
what the relay cannot read back. A record that still fails to parse (changed by hand, or by an
older version) is skipped and reported (`Unreadable`): it never stops other subscribers'
deliveries or the pipeline, and it can still be deleted.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass

from pydantic import ValidationError
from redis.asyncio import Redis

from service.domain.problems import first_problem
from service.domain.subscriptions import (
    ROTATION_OVERLAP_S,
    Subscription,
    SubscriptionCreate,
    SubscriptionPatch,
    changed,
    new_secret,
    parse,
)
from service.storage import keys, lua

log = logging.getLogger("recording_relay.subscriptions")
SAVE = lua.source("save_subscription")  # stored unless new and the limit is reached


@dataclass(frozen=True)
class Unreadable:
    """A stored subscription that does not parse: skipped everywhere, shown by the API."""

    id: str
    error: str


class LimitReached(Exception):
    """No new subscription: `SUBSCRIPTIONS_MAX` are stored already."""


class SubscriptionStore:
    """The subscriptions in Redis: one hash field each, read whole."""

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
            filter=request.filter,
            headers=request.headers,
            rate_limit=request.rate_limit,
            auth=request.auth,
            tls=None if request.tls is None or request.tls.empty else request.tls,
            secret=new_secret(),
            created_at=now,
            updated_at=now,
        )
        await self.save(subscription)
        return subscription

    async def get(self, subscription_id: str) -> Subscription | Unreadable | None:
        raw = await self.redis.hget(keys.SUBSCRIPTIONS, subscription_id)  # type: ignore[misc]
        return None if raw is None else _read(subscription_id, raw)

    async def scan(self) -> tuple[list[Subscription], list[Unreadable]]:
        """Every subscription, oldest first, and the stored records that do not parse."""
        raw = await self.redis.hgetall(keys.SUBSCRIPTIONS)  # type: ignore[misc]
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
        if changes.get("rate_limit") == 0:
            changes["rate_limit"] = None
        if patch.auth is not None and patch.auth.type == "none":
            changes["auth"] = None
        if patch.tls is not None and patch.tls.empty:
            changes["tls"] = None
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
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.SUBSCRIPTIONS, subscription_id)
            pipe.hdel(keys.SPACING, subscription_id)
            pipe.hdel(keys.PACE, subscription_id)
            deleted, _, _ = await pipe.execute()
        return bool(deleted)

    async def save(self, subscription: Subscription) -> None:
        """Store `subscription` (valid by construction); `LimitReached` for one too many."""
        document = Subscription.model_validate(subscription.model_dump()).model_dump_json()
        args: list[str | int] = [subscription.id, document, self.limit, subscription.spacing_ms]
        if not await self._save(keys=[keys.SUBSCRIPTIONS, keys.SPACING], args=args):
            raise LimitReached(f"at most {self.limit} subscriptions (SUBSCRIPTIONS_MAX)")


def _read(subscription_id: str, document: bytes) -> Subscription | Unreadable:
    try:
        return parse(document)
    except ValidationError as error:
        problem = "{}: {}".format(*first_problem(error, "record"))
        log.error("subscription %s is unreadable and skipped: %s", subscription_id, problem)
        return Unreadable(subscription_id, problem)
