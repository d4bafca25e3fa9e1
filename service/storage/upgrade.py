"""Taking up what an earlier version of the relay left in Redis, so that an upgrade loses
nothing. Every worker runs it at start-up; it finds nothing to do once one has.

Before issue 17, each delivery was a hash of its own (`rr:delivery:{subscription}:{message}`,
its body in it) with an outbox per recording and subscriber, slots, waiting lists and leases:
each one still pending is queued again in today's queue (same `webhook-id`: the message id is
derived from the recording and the event, as then), each one that failed for good is listed
for recover again, and the old keys are deleted. A recording's attempt log
(`rr:recording:{id}:attempts`) is left to expire with the retention.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from service.storage import keys
from service.storage.archive import day_of
from service.storage.deliveries import CODES, Deliveries

log = logging.getLogger("recording_relay.upgrade")
LAYOUT = 2  # the layout of Redis this code keeps (1: before issue 17)
OLD_PREFIXES = ("rr:outbox:", "rr:slots:", "rr:waiting:", "rr:failing-since:")
OLD_LEASES = "rr:deliveries:leased"


async def take_up_old_deliveries(redis: Redis, deliveries: Deliveries) -> int:
    """Queue again each delivery the version before issue 17 left pending; how many. Once a
    worker has done it (`keys.LAYOUT`), it is one `GET`."""
    if int(await redis.get(keys.LAYOUT) or 0) >= LAYOUT:
        return 0
    if not await redis.set(keys.UPGRADING, 1, nx=True, px=60_000):
        return 0  # another worker is at it
    old: list[str] = []
    async for raw_key in redis.scan_iter(match="rr:*", count=1000):
        key = raw_key.decode()
        if key.startswith(("rr:delivery:", *OLD_PREFIXES)):
            old.append(key)
    queued = 0
    for key in old:
        if not key.startswith("rr:delivery:"):
            await redis.delete(key)
            continue
        fields = {k.decode(): v.decode() for k, v in (await redis.hgetall(key)).items()}  # type: ignore[misc]
        sub, recording, kind = (
            fields.get("subscription_id", ""),
            fields.get("recording_id", ""),
            fields.get("type", ""),
        )
        if kind in CODES and sub and recording:
            accepted = await redis.hget(keys.recording(recording), "accepted_at")  # type: ignore[misc]
            day = day_of(int(float(accepted))) if accepted else ""
            if fields.get("status") == "pending" and fields.get("body"):
                fanned = await deliveries.fan_out(
                    recording, kind, fields["body"], day=day, only=sub
                )
                queued += fanned.subscriptions
            elif fields.get("status") == "failed":
                at = float(fields.get("finished_at") or 0)
                await redis.zadd(keys.failed(sub), {f"{recording}:{CODES[kind]}": at})
        await redis.delete(key)
    # The old due set named deliveries (`sub:msg`), today's names subscriptions.
    for member in await redis.zrange(keys.DUE, 0, -1):
        if b":" in member:
            await redis.zrem(keys.DUE, member)
    await redis.delete(OLD_LEASES)
    for sub in await redis.hkeys(keys.SUBSCRIPTIONS):  # type: ignore[misc]
        listed = await redis.zrange(keys.failed(sub.decode()), 0, -1)
        stale = [m for m in listed if m.startswith(b"rr:delivery:")]
        if stale:
            await redis.zrem(keys.failed(sub.decode()), *stale)
    await redis.set(keys.LAYOUT, LAYOUT)
    await redis.delete(keys.UPGRADING)
    if queued:
        log.info("upgrade: %d deliveries left pending by the earlier version queued again", queued)
    return queued
