"""The delivery queue on a real Redis: order per recording, slots per subscriber, leases, one
body however many subscribers, and what a deleted subscription leaves (nothing)."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from service.domain.attempts import Attempt, Outcome
from service.domain.subscriptions import Subscription, SubscriptionCreate
from service.storage.deliveries import (
    WINDOW,
    Claimed,
    Claims,
    Deliveries,
    DeliveryQueue,
)
from service.storage.heartbeats import Heartbeats
from service.storage.subscriptions import SubscriptionStore
from service.storage.upgrade import take_up_old_deliveries

RETENTION = 3600
COMPLETED, TRANSCRIBED = "recording.completed", "recording.transcribed"


WORKER = "worker.1:100"


async def setup(
    redis: Redis, slots: int = 4, subscribers: int = 1, holder: str = WORKER
) -> tuple[DeliveryQueue, Deliveries, list[Subscription]]:
    subscriptions = SubscriptionStore(redis)
    subs = [
        await subscriptions.create(SubscriptionCreate(url=f"https://example.com/hook/{n}"))
        for n in range(subscribers)
    ]
    await Heartbeats(redis).beat(holder)
    queue = DeliveryQueue(redis, slots, holder=holder, lapse=60, retention=RETENTION)
    return queue, Deliveries(redis, subscriptions, slots), subs


def attempt(status: int | None) -> Attempt:
    return Attempt(at=time.time(), status_code=status)


async def claim(queue: DeliveryQueue) -> list[Claimed]:
    return (await queue.claim(10)).taken


async def test_a_recordings_next_event_waits_for_the_first_to_settle(redis: Redis) -> None:
    queue, deliveries, [sub] = await setup(redis)
    await deliveries.fan_out("rec-1", COMPLETED, '{"n": 1}')
    await deliveries.fan_out("rec-1", TRANSCRIBED, '{"n": 2}')
    first = await claim(queue)
    assert [c.type for c in first] == [COMPLETED]
    assert await claim(queue) == []  # the second waits for the first
    await queue.settle(first[0], Outcome.RETRY, attempt(500), retry_in=60)
    assert await claim(queue) == []  # a retrying head still holds the line
    await redis.zadd(f"rr:queue:{sub.id}", {"rec-1": 0})  # its retry comes due
    await redis.zadd("rr:deliveries:due", {sub.id: 0})
    [again] = await claim(queue)
    assert (again.type, again.attempts) == (COMPLETED, 1)
    # Settled, it hands its worker the next event at once, in the slot it frees.
    second = (await queue.settle(again, Outcome.SUCCEEDED, attempt(200))).then
    assert second is not None
    assert (second.type, second.body, second.attempts) == (TRANSCRIBED, '{"n": 2}', 0)
    assert await claim(queue) == []  # held by the worker: no one else takes it


async def test_a_worker_that_takes_no_more_leaves_the_next_event_to_the_queue(
    redis: Redis,
) -> None:
    queue, deliveries, _ = await setup(redis)
    await deliveries.fan_out("rec-1", COMPLETED, "{}")
    await deliveries.fan_out("rec-1", TRANSCRIBED, "{}")
    [first] = await claim(queue)
    settled = await queue.settle(first, Outcome.SUCCEEDED, attempt(200), chain=False)
    assert settled.then is None and settled.woke  # due now: the dispatcher looks again
    [second] = await claim(queue)
    assert second.type == TRANSCRIBED


async def test_the_fan_out_hands_what_can_go_now_to_the_caller(redis: Redis) -> None:
    _, deliveries, subs = await setup(redis, slots=1, subscribers=3)
    fanned = await deliveries.fan_out("rec-1", COMPLETED, "{}", room=2, holder=WORKER)
    assert fanned.subscriptions == 3
    assert {c.subscription_id for c in fanned.handed} < {s.id for s in subs}
    assert len(fanned.handed) == 2  # the caller had room for two; the third is queued
    # Each handed one holds its subscriber's only slot: their next recordings wait; the
    # third subscriber's slot is free (its first delivery is queued, not in flight).
    later = await deliveries.fan_out("rec-2", COMPLETED, "{}", room=10, holder=WORKER)
    busy = {c.subscription_id for c in fanned.handed}
    assert [c.subscription_id for c in later.handed] == [s.id for s in subs if s.id not in busy]


async def test_a_full_subscriber_waits_and_a_freed_slot_lets_the_next_go(redis: Redis) -> None:
    queue, deliveries, [sub] = await setup(redis, slots=2)
    for n in range(4):
        await deliveries.fan_out(f"rec-{n}", COMPLETED, "{}")
    taken = await claim(queue)
    assert len(taken) == 2
    assert await claim(queue) == []
    settled = await queue.settle(taken[0], Outcome.SUCCEEDED, attempt(200))
    assert settled.woke  # a slot freed for what waited: the dispatcher looks again at once
    [freed] = await claim(queue)
    assert freed.recording_id not in {c.recording_id for c in taken}
    log, _ = await deliveries.attempts(sub.id)
    assert log == [
        Attempt(
            at=log[0].at,
            status_code=200,
            subscription_id=sub.id,
            recording_id=taken[0].recording_id,
            type=COMPLETED,
            msg_id=taken[0].msg_id,
        )
    ]


async def test_what_a_dead_worker_held_is_due_again(redis: Redis) -> None:
    queue, deliveries, [sub] = await setup(redis)
    fanned = await deliveries.fan_out("rec-1", COMPLETED, "{}", room=1, holder=WORKER)
    [lost] = fanned.handed  # held by a worker that dies before it settles
    other = DeliveryQueue(redis, 4, holder="worker.2:200", lapse=60, retention=RETENTION)
    await Heartbeats(redis).beat("worker.2:200")
    assert await other.claim(10) == Claims([], None)  # its heartbeat has not lapsed yet
    await Heartbeats(redis).beat(WORKER, time.time() - 61)  # now it has
    await other.claim(10)  # names the dead worker: what it held is released
    [again] = await claim(other)
    assert (again.recording_id, again.type) == (lost.recording_id, lost.type)
    assert again.msg_id == lost.msg_id  # the same webhook-id: subscribers de-duplicate
    assert await redis.zscore("rr:workers", WORKER) is None
    # The dead worker's late answer changes nothing the second attempt owns.
    await queue.settle(lost, Outcome.SUCCEEDED, attempt(200))
    assert await redis.hget("rr:deliveries:in-flight", sub.id) == b"1"
    await other.settle(again, Outcome.SUCCEEDED, attempt(200))
    assert await redis.hget("rr:deliveries:in-flight", sub.id) == b"0"
    assert await redis.keys("rr:pending:*") == []


async def test_a_stopping_worker_releases_what_it_cut_short(redis: Redis) -> None:
    queue, deliveries, _ = await setup(redis)
    fanned = await deliveries.fan_out("rec-1", COMPLETED, "{}", room=1, holder=WORKER)
    assert len(fanned.handed) == 1
    assert await queue.release(WORKER) == 1
    [again] = await claim(queue)
    assert again.recording_id == "rec-1"


async def test_a_spent_delivery_is_failed_and_listed_for_recover(redis: Redis) -> None:
    queue, deliveries, [sub] = await setup(redis)
    await deliveries.fan_out("rec-1", COMPLETED, "{}")
    [claimed] = await claim(queue)
    await queue.settle(claimed, Outcome.FAILED, attempt(503), counts=True)
    [failed] = await deliveries.failed_since(sub.id, 0)
    assert (failed["recording_id"], failed["type"]) == ("rec-1", COMPLETED)
    assert await deliveries.failing_since(sub.id) is not None
    assert await claim(queue) == []
    assert await redis.keys("rr:body:*") == []  # recover reads it from the archive


async def test_one_body_is_kept_however_many_subscribers_and_freed_by_the_last(
    redis: Redis,
) -> None:
    queue, deliveries, _ = await setup(redis, subscribers=40)
    body = "x" * 50_000
    await deliveries.fan_out("rec-0", COMPLETED, "{}")  # each subscriber has pending work
    before = await held(redis)
    await deliveries.fan_out("rec-1", COMPLETED, body)
    assert await held(redis) - before < 1.2 * len(body)  # one copy, and little per subscriber
    assert sorted(await redis.keys("rr:body:*")) == [b"rr:body:rec-0:c", b"rr:body:rec-1:c"]
    taken = (await queue.claim(100)).taken
    first = [c for c in taken if c.recording_id == "rec-0"]
    taken = [c for c in taken if c.recording_id == "rec-1"]
    assert len(taken) == 40 and {c.body for c in taken} == {body}
    for claimed in taken[:-1]:
        await queue.settle(claimed, Outcome.SUCCEEDED, attempt(200))
    assert await redis.exists("rr:body:rec-1:c")  # one subscriber still has it to receive
    await queue.settle(taken[-1], Outcome.SUCCEEDED, attempt(200))
    assert not await redis.exists("rr:body:rec-1:c")
    for claimed in first:
        await queue.settle(claimed, Outcome.SUCCEEDED, attempt(200))
    assert await redis.keys("rr:body:*") == []
    assert await redis.keys("rr:pending:*") == []


async def held(redis: Redis) -> int:
    """What every key takes (`MEMORY USAGE`), whatever the client buffers hold meanwhile."""
    return sum([int(await redis.memory_usage(key) or 0) async for key in redis.scan_iter()])


async def test_dropping_a_subscription_frees_what_it_had_queued_at_once(redis: Redis) -> None:
    queue, deliveries, [kept, dropped] = await setup(redis, subscribers=2)
    for n in range(3):
        await deliveries.fan_out(f"rec-{n}", COMPLETED, "{}")
        await deliveries.fan_out(f"rec-{n}", TRANSCRIBED, "{}")
    await deliveries.drop(dropped.id)
    for key in ("pending", "queue", "attempts", "failed"):
        assert not await redis.exists(f"rr:{key}:{dropped.id}")
    # Each body is still owed to the other subscriber, once.
    assert {int(await redis.hget(k, "n")) for k in await redis.keys("rr:body:*")} == {1}
    taken = await claim(queue)
    assert {c.subscription_id for c in taken} == {kept.id}


async def test_the_attempt_window_is_bounded(redis: Redis) -> None:
    queue, deliveries, [sub] = await setup(redis, slots=1000)
    for n in range(2 * WINDOW):
        await deliveries.fan_out(f"rec-{n}", COMPLETED, "{}")
    for claimed in (await queue.claim(2 * WINDOW)).taken:
        await queue.settle(claimed, Outcome.SUCCEEDED, attempt(200))
    _, kept = await deliveries.attempts(sub.id)
    assert WINDOW <= kept <= 1.2 * WINDOW


async def test_the_queue_says_when_it_next_has_work(redis: Redis) -> None:
    queue, deliveries, _ = await setup(redis)
    assert (await queue.claim(10)).next_due is None  # nothing queued: nothing to wait for
    await deliveries.fan_out("rec-1", COMPLETED, "{}")
    claims = await queue.claim(10)
    [claimed] = claims.taken
    assert claims.next_due is None  # in flight: its settling says what comes next
    await queue.settle(claimed, Outcome.RETRY, attempt(500), retry_in=120)
    claims = await queue.claim(10)
    assert claims.taken == []
    assert claims.next_due is not None
    assert 119 < claims.next_due - time.time() <= 120  # the retry's due time


async def test_deliveries_an_earlier_version_left_pending_are_sent_after_an_upgrade(
    redis: Redis,
) -> None:
    _, deliveries, [sub] = await setup(redis)
    # As the version before issue 17 kept them: a hash per delivery, its body inside.
    old = {
        "rr:delivery:" + sub.id + ":msg_pending": {
            "subscription_id": sub.id,
            "recording_id": "rec-1",
            "type": COMPLETED,
            "body": '{"n": 1}',
            "status": "pending",
        },
        "rr:delivery:" + sub.id + ":msg_failed": {
            "subscription_id": sub.id,
            "recording_id": "rec-2",
            "type": COMPLETED,
            "status": "failed",
            "finished_at": "1764600000",
        },
    }
    for key, fields in old.items():
        await redis.hset(key, mapping=fields)
    await redis.zadd("rr:outbox:" + sub.id + ":rec-1", {"msg_pending": 1})
    await redis.zadd("rr:deliveries:due", {sub.id + ":msg_pending": 0})
    assert await take_up_old_deliveries(redis, deliveries) == 1
    assert await redis.keys("rr:delivery:*") == await redis.keys("rr:outbox:*") == []
    queue = DeliveryQueue(redis, 4, holder=WORKER, lapse=60, retention=RETENTION)
    [again] = await claim(queue)
    assert (again.recording_id, again.type, again.body) == ("rec-1", COMPLETED, '{"n": 1}')
    [failed] = await deliveries.failed_since(sub.id, 0)
    assert failed["recording_id"] == "rec-2"  # still listed for recover
    assert await take_up_old_deliveries(redis, deliveries) == 0  # once


class Clock:
    """The delivery queue's `time`, moved by the test (the scripts take "now" from it, in
    whole milliseconds)."""

    def __init__(self) -> None:
        self.ms = int(time.time() * 1000)

    def time(self) -> float:
        return (self.ms + 0.5) / 1000  # the middle of the millisecond: no rounding down


async def test_a_throttled_subscribers_turns_keep_their_schedule_and_never_crowd(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr("service.storage.deliveries.time", clock)
    subscriptions = SubscriptionStore(redis)
    await subscriptions.create(
        SubscriptionCreate(url="https://example.com/hook/slow", rate_limit=10)  # every 100 ms
    )
    await Heartbeats(redis).beat(WORKER)
    queue = DeliveryQueue(redis, 4, holder=WORKER, lapse=60, retention=RETENTION)
    deliveries = Deliveries(redis, subscriptions, 4)
    for n in range(6):
        await deliveries.fan_out(f"rec-{n}", COMPLETED, "{}")
    start = clock.ms

    async def turn(at_ms: int) -> tuple[int, int | None]:
        """Claim at `at_ms` after the start: how many were taken, when the next turn is (ms)."""
        clock.ms = start + at_ms
        claims = await queue.claim(10)
        for claimed in claims.taken:
            await queue.settle(claimed, Outcome.SUCCEEDED, attempt(200))
        after = None if claims.next_due is None else round(claims.next_due * 1000) - start
        return len(claims.taken), after

    # The first turn starts the schedule: the next comes a whole spacing later, not sooner.
    assert await turn(0) == (1, 100)
    assert await turn(60) == (0, 100)  # too soon: nothing, and when to look again
    # Late by less than a quarter of the spacing: the schedule holds (no drift below the rate).
    assert await turn(120) == (1, 200)
    assert await turn(200) == (1, 300)
    # Later than that: a new schedule from then, a whole spacing on (no burst to catch up).
    assert await turn(450) == (1, 550)
    assert await turn(549) == (0, 550)
    assert await turn(550) == (1, 650)
