"""In-flight slots per subscriber: a cap across workers, parking, waking, lapsing."""

from __future__ import annotations

from redis.asyncio import Redis

from workers.slots import Slots


async def test_a_full_subscriber_parks_and_a_freed_slot_wakes_the_longest_waiting(
    redis: Redis,
) -> None:
    slots = Slots(redis, capacity=2, hold=60)
    assert await slots.acquire("sub", "a")
    assert await slots.acquire("sub", "b")
    assert not await slots.acquire("sub", "c")
    assert not await slots.acquire("sub", "d")
    assert await slots.acquire("other", "x")  # other subscribers are not affected
    assert await slots.acquire("sub", "a")  # a re-run of a holder keeps its slot
    assert await slots.release("sub", "a") == "c"
    assert await slots.acquire("sub", "c")
    assert not await slots.acquire("sub", "d")
    assert await slots.release("sub", "b") == "d"
    assert await slots.release("sub", "c") is None


async def test_a_slot_held_by_a_dead_worker_lapses(redis: Redis) -> None:
    dead = Slots(redis, capacity=1, hold=-1)  # its hold is already over
    assert await dead.acquire("sub", "lost")
    alive = Slots(redis, capacity=1, hold=60)
    assert await alive.acquire("sub", "next")
    assert not await alive.acquire("sub", "third")
