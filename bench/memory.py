"""bench/memory: what each recording costs in Redis, in bytes and in commands.

The Plivo sandbox with 5-minute transcripts (about 750 words, word-level `raw`), the relay's web
process and one worker, a private Redis, the archive on the file store, and subscribers on
loopback (bench/receiver.py). Three measurements, each on a fresh Redis:

1. Delivered, with `--subscribers` subscriptions answering 204 (3, then 2 by default): after
   warm-up recordings (which fill what is bounded per subscription: its attempt window), N
   recordings go through the whole pipeline; once every one is transcribed, its webhooks
   delivered and its attempts moved to the archive, Redis's `used_memory` and `INFO
   commandstats` are compared with before them: bytes and commands per recording (the bench's
   own `INFO` calls left out).
2. Pending at failing subscribers: M recordings go to `--failing` subscriptions that answer
   500 (and, as the baseline in the same run, to one), after warm-up recordings have filled
   their attempt windows; once each delivery has failed twice, the bytes each recording holds
   in Redis while its webhooks wait for their retries. One body a recording, however many
   subscribers: the ratio of the two is the goal.

    .venv/bin/python bench/memory.py [--recordings 500] [--rate 20] [--subscribers 3,2]
        [--failing 40] [--pending 10] [--explain]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import (  # noqa: E402
    loopback,
    record_calls,
    start,
    stop_all,
    wait_up,
)
from service.local.embedded_redis import EmbeddedRedis  # noqa: E402

WORDS = 750  # about 5 minutes of speech
EVENTS = 3  # completed, transcribed, archived: the webhooks of one recording
# Warm-up recordings: each subscription's attempt window (100 to 120, what is bounded per
# subscription, not per recording) fills before what is measured: three attempts a delivered
# recording, two a failing one (at once and 5 s later).
WARM_UP = 40
WARM_UP_FAILING = 65
DEADLINE = 900.0


async def commands(redis: aioredis.Redis) -> dict[str, int]:
    """Calls per command so far, the bench's own `INFO` left out."""
    stats = await redis.info("commandstats")
    return {
        k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"
    }


async def used_memory(redis: aioredis.Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def by_kind(redis: aioredis.Redis) -> dict[str, int]:
    """`MEMORY USAGE` of every key, summed by kind of key (ids replaced by `*`)."""
    totals: dict[str, int] = {}
    async for key in redis.scan_iter(count=1000):
        name = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|msg_\w+|sub_\w+", "*", key.decode())
        totals[name] = totals.get(name, 0) + int(await redis.memory_usage(key) or 0)
    return totals


async def arrived(http: httpx.AsyncClient, receiver: str, prefix: str) -> int:
    stats = (await http.get(f"{receiver}/stats")).json()
    return sum(v["count"] for path, v in stats.items() if path.startswith(prefix))


async def quiet(redis: aioredis.Redis) -> None:
    """Until the relay stops talking to Redis: nothing due, no attempt log waiting for the
    archive, and no command for a while (a few idle looks aside)."""
    deadline = time.monotonic() + DEADLINE
    last = -1
    while time.monotonic() < deadline:
        await asyncio.sleep(1.5)
        waiting = await redis.llen("rr:archive:attempts")
        total = sum((await commands(redis)).values())
        if waiting == 0 and total - last < 8:
            return
        last = total
    raise SystemExit("Redis did not quieten")


async def until(what: str, check: object) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"{what}: not within {DEADLINE:.0f} s")


@dataclass
class Relay:
    redis: aioredis.Redis
    http: httpx.AsyncClient
    sandbox: str
    relay: str
    receiver: str
    admin: str

    async def subscribe(self, path: str, count: int) -> None:
        for n in range(count):
            created = await self.http.post(
                f"{self.relay}/v1/subscriptions",
                json={"url": f"{self.receiver}{path}/{n}"},
                headers={"Authorization": f"Bearer {self.admin}"},
            )
            assert created.status_code == 201, created.text


async def with_relay(work: Path, run: object) -> None:
    """Run `run(relay)` against a fresh Redis, sandbox, relay and receiver."""
    with EmbeddedRedis(work / "redis") as redis_server:
        site = loopback(redis_server.url, work)
        env = site.env
        processes = [
            start([sys.executable, "-m", "sandbox"], env, work / "sandbox.log"),
            start([sys.executable, "-m", "service.web"], env, work / "web.log"),
            start([sys.executable, "-m", "workers"], env, work / "worker.log"),
            start(
                [sys.executable, "-m", "uvicorn", "bench.receiver:app", "--port",
                 str(site.receiver_port), "--log-level", "warning"],
                env,
                work / "receiver.log",
            ),
        ]  # fmt: skip
        redis = aioredis.Redis.from_url(redis_server.url)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                for url in (
                    f"{site.relay}/healthz",
                    f"{site.sandbox}/sandbox/stats",
                    f"{site.receiver}/stats",
                ):
                    await wait_up(url)
                await http.put(f"{site.sandbox}/sandbox/faults", json={"transcript_words": WORDS})
                await run(Relay(redis, http, site.sandbox, site.relay, site.receiver, site.admin))  # type: ignore[operator]
        finally:
            await redis.aclose()
            stop_all(processes)


async def transcribed(relay: Relay, ids: list[str]) -> bool:
    async with relay.redis.pipeline(transaction=False) as pipe:
        for recording_id in ids:
            pipe.hget(f"rr:recording:{recording_id}", "status")
        return all(s == b"transcribed" for s in await pipe.execute())


async def delivered(args: argparse.Namespace, work: Path, subscribers: int) -> None:
    async def run(relay: Relay) -> None:
        await relay.subscribe("/hook/ok", subscribers)
        warm = await record_calls(relay.sandbox, relay.relay, WARM_UP)
        await until("warm-up", lambda: _enough(relay, "/hook/", EVENTS * subscribers * len(warm)))
        await quiet(relay.redis)
        before, calls_before = await used_memory(relay.redis), await commands(relay.redis)
        ids = await record_calls(relay.sandbox, relay.relay, args.recordings, args.rate)
        total = EVENTS * subscribers * (len(warm) + len(ids))
        await until("delivery", lambda: _enough(relay, "/hook/", total))
        await until("transcribed", lambda: transcribed(relay, ids))
        await quiet(relay.redis)
        after, calls_after = await used_memory(relay.redis), await commands(relay.redis)
        spent = {
            k: (calls_after.get(k, 0) - calls_before.get(k, 0)) / len(ids) for k in calls_after
        }
        pace = f"{args.rate:g} a second" if args.rate else "all at once"
        print(
            f"bench/memory: {len(ids)} recordings of {WORDS}-word transcripts ({pace}) "
            f"delivered to {subscribers} subscribers"
        )
        print(f"  Redis used_memory: {before:,} -> {after:,} bytes")
        per = (after - before) / len(ids)
        print(f"  per delivered recording: {per:,.0f} bytes (goal <= 512 with 3)")
        print(f"  Redis commands per recording: {sum(spent.values()):.1f} (goal <= 150 with 2)")
        if args.explain:
            kinds = await by_kind(relay.redis)
            every = len(warm) + len(ids)
            for name, size in sorted(kinds.items(), key=lambda item: -item[1])[:10]:
                print(f"    {size / every:8,.0f} bytes/recording  {name}")
            for name, count in sorted(spent.items(), key=lambda item: -item[1])[:40]:
                print(f"    {count:6.2f} {name}")

    await with_relay(work, run)


async def _enough(relay: Relay, prefix: str, count: int) -> bool:
    return await arrived(relay.http, relay.receiver, prefix) >= count


async def pending(args: argparse.Namespace, work: Path, failing: int) -> float:
    """Bytes each recording holds while its webhooks wait at `failing` subscribers."""
    result = 0.0

    async def run(relay: Relay) -> None:
        nonlocal result
        await relay.subscribe("/fail", failing)
        warm = await record_calls(relay.sandbox, relay.relay, WARM_UP_FAILING)
        # Each delivery fails at once and 5 s later (the schedule's first two): the windows fill.
        await until("warm-up", lambda: _enough(relay, "/fail/", 2 * failing * len(warm)))
        await quiet(relay.redis)
        before = await used_memory(relay.redis)
        ids = await record_calls(relay.sandbox, relay.relay, args.pending)
        await until("transcribed", lambda: transcribed(relay, ids))
        total = 2 * failing * (len(warm) + len(ids))
        await until("two failures each", lambda: _enough(relay, "/fail/", total))
        await quiet(relay.redis)
        result = (await used_memory(relay.redis) - before) / len(ids)
        print(
            f"  pending at {failing} failing subscriber{'s' if failing > 1 else ''}: "
            f"{result:,.0f} bytes a recording"
        )

    await with_relay(work, run)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=500)
    parser.add_argument("--rate", type=float, help="callbacks a second (default: all at once)")
    parser.add_argument("--subscribers", default="3,2", help="subscriber counts to measure")
    parser.add_argument("--failing", type=int, default=40)
    parser.add_argument("--pending", type=int, default=10, help="recordings measured pending")
    parser.add_argument("--explain", action="store_true", help="bytes and commands by kind")
    args = parser.parse_args()
    for count in (int(n) for n in args.subscribers.split(",") if n):
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            asyncio.run(delivered(args, Path(tmp), count))
    if args.failing:
        print(f"bench/memory: {args.pending} recordings whose webhooks wait for their retries")
        sizes = []
        for failing in (1, args.failing):
            with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
                sizes.append(asyncio.run(pending(args, Path(tmp), failing)))
        print(f"  ratio {args.failing} to 1: {sizes[1] / sizes[0]:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
