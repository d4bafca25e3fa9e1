"""The delivery queue on a real Redis: order per recording, slots per subscriber, leases."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from service.storage import keys
from service.storage.deliveries import ATTEMPT_DEFAULTS, Claimed, Deliveries, DeliveryQueue
from service.storage.subscriptions import SubscriptionStore
from service.subscriptions import Subscription, SubscriptionCreate

RETENTION = 3600


async def setup(
    redis: Redis, slots: int = 4, lease: float = 60
) -> tuple[DeliveryQueue, Deliveries, Subscription]:
    subscriptions = SubscriptionStore(redis)
    subscription = await subscriptions.create(SubscriptionCreate(url="https://example.com/hook"))
    queue = DeliveryQueue(redis, slots, lease, retention=RETENTION)
    return queue, Deliveries(redis, subscriptions), subscription


def attempt(claimed: Claimed, status: int | None) -> dict[str, object]:
    return {"msg_id": claimed.msg_id, "status_code": status}


async def test_a_recordings_next_event_waits_for_the_first_to_settle(redis: Redis) -> None:
    queue, deliveries, sub = await setup(redis)
    await deliveries.queue(sub, "rec-1", "recording.completed", '{"n": 1}')
    await deliveries.queue(sub, "rec-1", "recording.transcribed", '{"n": 2}')
    first = (await queue.claim(10)).taken
    assert [c.type for c in first] == ["recording.completed"]
    assert (await queue.claim(10)).taken == []  # the second waits for the first
    await queue.settle(first[0], "retry", attempt(first[0], 500), "HTTP 500", retry_in=60)
    assert (await queue.claim(10)).taken == []  # a retrying head still holds the line
    await deliveries.queue(sub, "rec-1", "recording.completed", '{"n": 1}')  # replayed: due now
    again = (await queue.claim(10)).taken
    assert [(c.type, c.attempts) for c in again] == [("recording.completed", 0)]
    await queue.settle(again[0], "succeeded", attempt(again[0], 200))
    second = (await queue.claim(10)).taken
    assert [c.type for c in second] == ["recording.transcribed"]
    assert second[0].body == '{"n": 2}'


async def test_a_full_subscriber_waits_and_a_freed_slot_lets_the_next_go(redis: Redis) -> None:
    queue, deliveries, sub = await setup(redis, slots=2)
    for n in range(4):
        await deliveries.queue(sub, f"rec-{n}", "recording.completed", "{}")
    taken = (await queue.claim(10)).taken
    assert len(taken) == 2
    assert (await queue.claim(10)).taken == []
    await queue.settle(taken[0], "succeeded", attempt(taken[0], 200))
    [freed] = (await queue.claim(10)).taken
    assert freed.recording_id not in {c.recording_id for c in taken}
    log, _ = await deliveries.attempts(keys.attempts(sub.id))
    assert log == [{**ATTEMPT_DEFAULTS, "msg_id": taken[0].msg_id, "status_code": 200}]


async def test_a_dead_workers_lease_lapses_and_the_delivery_is_due_again(redis: Redis) -> None:
    queue, deliveries, sub = await setup(redis, lease=-1)  # every lease has already lapsed
    await deliveries.queue(sub, "rec-1", "recording.completed", "{}")
    lost = (await queue.claim(10)).taken
    assert len(lost) == 1
    again = (await queue.claim(10)).taken
    assert [c.msg_id for c in again] == [lost[0].msg_id]


async def test_a_spent_delivery_is_failed_and_visible(redis: Redis) -> None:
    queue, deliveries, sub = await setup(redis)
    await deliveries.queue(sub, "rec-1", "recording.completed", "{}")
    [claimed] = (await queue.claim(10)).taken
    await queue.settle(claimed, "failed", attempt(claimed, 503), "HTTP 503")
    [failed] = await deliveries.failed_since(sub.id, 0)
    assert failed["status"] == "failed"
    assert failed["last_error"] == "HTTP 503"
    assert failed["attempts"] == "1"
    assert (await queue.claim(10)).taken == []


async def test_a_settled_delivery_and_its_log_expire_with_the_recording(redis: Redis) -> None:
    queue, deliveries, sub = await setup(redis)
    await deliveries.queue(sub, "rec-1", "recording.completed", "{}")
    await deliveries.queue(sub, "rec-2", "recording.completed", "{}")
    [first, second] = (await queue.claim(10)).taken
    key = f"rr:delivery:{first.member}"
    await queue.settle(first, "retry", attempt(first, 500), "HTTP 500", retry_in=0)
    assert await redis.ttl(key) == -1  # pending: kept until settled
    [first] = (await queue.claim(10)).taken
    await queue.settle(first, "succeeded", attempt(first, 200))
    assert not await redis.exists(key)  # delivered: only the attempt logs remember it
    assert 0 < await redis.ttl("rr:recording:rec-1:attempts") <= RETENTION
    await queue.settle(second, "failed", attempt(second, 500), "HTTP 500")
    failed = f"rr:delivery:{second.member}"
    assert 0 < await redis.ttl(failed) <= RETENTION  # kept for recover, then forgotten
    assert await redis.hget(failed, "body") is None  # the body is in the archive


async def test_the_queue_says_when_it_next_has_work(redis: Redis) -> None:
    queue, deliveries, sub = await setup(redis, lease=30)
    assert (await queue.claim(10)).next_due is None  # nothing queued: nothing to wait for
    await deliveries.queue(sub, "rec-1", "recording.completed", "{}")
    claims = await queue.claim(10)
    [claimed] = claims.taken
    # In flight: the next thing to happen is its lease lapsing, unless it is settled first.
    assert claims.next_due == claimed.claimed_at + 30
    await queue.settle(claimed, "retry", attempt(claimed, 500), "HTTP 500", retry_in=120)
    claims = await queue.claim(10)
    assert claims.taken == []
    assert claims.next_due is not None
    assert 119 < claims.next_due - time.time() <= 120  # the retry's due time
