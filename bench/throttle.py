"""bench/throttle: a throttled subscriber holds its limit, and the others run at full speed.

1. The limit: one worker process (pinned to CPU 0, as in bench/deliver) with two
   subscriptions queued at once: one limited to `--limit` webhooks a second (`--seconds` of
   them) and one without a limit (`--deliveries`), which keeps the worker flat out. The
   limited one's rate, first arrival to last, against its limit; its busiest second (any
   one-second window of arrivals at the receiver).
2. The others: three relays at once, each with its own Redis, their three worker processes
   all pinned to CPU 0, so that whatever this machine's speed does (it swings by tens of
   percent within minutes) it does to the three alike. In each, one subscription without a
   limit has `--deliveries` webhooks queued; beside it there is
   - nothing (`alone`);
   - a subscription limited to `--limit`/s with a backlog (`limited`);
   - a subscription without a limit to which the bench queues `--limit` webhooks a second
     as they come, the same traffic without throttling (`fed`).
   Over the time all three run: each unlimited subscriber's rate against the one alone's.
   `limited` over `fed` is what throttling costs the others beyond the work of the limited
   subscriber's own webhooks (goal: none, x1.00 within the noise); `limited` over `alone` is
   what they pay in all, at this worker's share of a core.

Redis and the receiver (bench/receiver.py) run on CPU 1.

    .venv/bin/python bench/throttle.py [--limit 20] [--seconds 20] [--deliveries 3000]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.deliver import DAY, SERVICE_CPU, Bench, answering, payload, start_receiver  # noqa: E402
from service.domain.subscriptions import Subscription, SubscriptionCreate  # noqa: E402
from service.local.embedded_redis import EmbeddedRedis  # noqa: E402
from service.storage.deliveries import Deliveries  # noqa: E402
from service.storage.subscriptions import SubscriptionStore  # noqa: E402

BESIDE = ("alone", "limited", "fed")


def busiest_second(times: list[float]) -> int:
    """The most arrivals in any one-second window."""
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


class Relay:
    """One relay of the side-by-side run: its Redis, its worker, its subscriptions."""

    def __init__(self, bench: Bench, beside: str) -> None:
        self.bench = bench
        self.beside = beside
        self.other: Subscription | None = None
        self.arq: ArqRedis | None = None
        self.deliveries: Deliveries | None = None

    async def fill(self, bodies: list[str], limit: float, backlog: int) -> None:
        """An empty Redis, the unlimited subscription with all of `bodies` queued, and the
        subscription beside it (`backlog` of them queued if it is limited)."""
        self.arq = arq = await create_pool(RedisSettings.from_dsn(self.bench.redis.url))
        await arq.flushall()
        subscriptions = SubscriptionStore(arq)
        self.deliveries = deliveries = Deliveries(arq, subscriptions)
        free = await subscriptions.create(self._subscription(self.beside, None))
        if self.beside != "alone":
            rate_limit = limit if self.beside == "limited" else None
            self.other = await subscriptions.create(
                self._subscription(f"{self.beside}-other", rate_limit)
            )
        limited = self.other if self.beside == "limited" else None
        for index, body in enumerate(bodies):
            recording = f"rec-{index}"
            if limited is not None and index < backlog:
                await deliveries.queue(limited, recording, "recording.completed", body, day=DAY)
            await deliveries.queue(free, recording, "recording.completed", body, day=DAY)

    def _subscription(self, name: str, rate_limit: float | None) -> SubscriptionCreate:
        return SubscriptionCreate(
            url=f"{self.bench.receiver}/hook/{name}",
            events=["recording.completed"],
            rate_limit=rate_limit,
        )

    async def feed(self, body: str, rate: float) -> None:
        """Queue `rate` webhooks a second to the subscription beside, as they come (`fed`)."""
        assert self.deliveries is not None and self.other is not None
        started, count = time.monotonic(), 0
        while True:
            count += 1
            await self.deliveries.queue(
                self.other, f"fed-{count}", "recording.completed", body, day=DAY
            )
            await asyncio.sleep(max(0.0, started + count / rate - time.monotonic()))

    async def close(self) -> None:
        self.bench.stop_worker()
        if self.arq is not None:
            await self.arq.aclose()


async def holds_limit(bench: Bench, bodies: list[str], limit: float, seconds: float) -> None:
    """Part 1: the limited subscriber's rate and busiest second beside one worker flat out."""
    relay = Relay(bench, "limited")
    await bench.http.post(f"{bench.receiver}/reset")
    count = int(limit * seconds)
    await relay.fill(bodies, limit, count)
    bench.start_worker("worker-limit.log")
    try:
        await bench.wait_for(len(bodies), ["/hook/limited"])
        await bench.wait_for(count, ["/hook/limited-other"], within=seconds * 3 + 60)
        times = (await bench.http.get(f"{bench.receiver}/times")).json()
    finally:
        await relay.close()
    limited = times["/hook/limited-other"]
    rate = (len(limited) - 1) / (limited[-1] - limited[0])
    free = times["/hook/limited"]
    print(
        f"  limited {rate:6.2f}/s (x{rate / limit:.3f} of its limit; goal 0.95 to 1.05), busiest"
        f" second {busiest_second(limited)} (limit {limit:g}); the unlimited one beside it"
        f" {(len(free) - 1) / (free[-1] - free[0]):.0f}/s"
    )


async def side_by_side(
    relays: dict[str, Relay], bodies: list[str], limit: float
) -> dict[str, float]:
    """Part 2, one round: the three relays at once; each unlimited subscriber's rate over the
    time all three ran, and the subscriber beside it's."""
    http, receiver = relays["alone"].bench.http, relays["alone"].bench.receiver
    await http.post(f"{receiver}/reset")
    for relay in relays.values():
        await relay.fill(bodies, limit, int(limit * 120))  # more than it can send meanwhile
    for relay in relays.values():
        relay.bench.start_worker("worker.log")
    try:
        for name, relay in relays.items():
            await relay.bench.wait_for(1, [f"/hook/{name}"])
        feeding = asyncio.create_task(relays["fed"].feed(bodies[0], limit))
        try:
            while True:  # until the first of them is done
                stats = (await http.get(f"{receiver}/stats")).json()
                if any(stats[f"/hook/{name}"]["count"] >= len(bodies) for name in relays):
                    break
                await asyncio.sleep(0.05)
        finally:
            feeding.cancel()
        times = (await http.get(f"{receiver}/times")).json()
    finally:
        for relay in relays.values():
            await relay.close()
    start = max(times[f"/hook/{name}"][0] for name in relays) + 0.5
    end = min(times[f"/hook/{name}"][-1] for name in relays)

    def rate(path: str) -> float:
        return sum(1 for t in times.get(path, []) if start <= t <= end) / (end - start)

    rates = {name: rate(f"/hook/{name}") for name in relays}
    rates |= {f"{name}-other": rate(f"/hook/{name}-other") for name in BESIDE[1:]}
    rates["seconds"] = end - start
    return rates


async def run(args: argparse.Namespace, work: Path) -> None:
    receiver, url = start_receiver()
    benches: dict[str, Bench] = {}
    for name in BESIDE:
        (work / name).mkdir()
        redis = EmbeddedRedis(work / name / "redis", cpu=SERVICE_CPU).start()
        benches[name] = Bench(work / name, redis, url)
    try:
        await answering(benches["alone"].http, url)
        bodies = [payload(index) for index in range(args.deliveries)]
        print(
            f"bench/throttle: a subscription limited to {args.limit:g}/s beside one without a"
            f" limit ({args.deliveries} webhooks)"
        )
        print("1. the limit, one worker process flat out")
        for _ in range(args.rounds):
            await holds_limit(benches["alone"], bodies, args.limit, args.seconds)
        print(
            "2. the others: three relays at once, their workers on one core; an unlimited"
            " subscriber alone, beside the limited one, beside one fed as fast without a limit"
        )
        relays = {name: Relay(bench, name) for name, bench in benches.items()}
        beside_limited, beside_fed, throttling = [], [], []
        for round_ in range(1, args.rounds + 1):
            rates = await side_by_side(relays, bodies, args.limit)
            limited, fed = rates["limited"] / rates["alone"], rates["fed"] / rates["alone"]
            beside_limited.append(limited)
            beside_fed.append(fed)
            throttling.append(limited / fed)
            print(
                f"  round {round_} ({rates['seconds']:.1f} s): alone {rates['alone']:.0f}/s;"
                f" beside the limited one ({rates['limited-other']:.2f}/s)"
                f" {rates['limited']:.0f}/s x{limited:.3f}; beside the fed one"
                f" ({rates['fed-other']:.2f}/s) {rates['fed']:.0f}/s x{fed:.3f}"
            )
        print(
            f"  median: beside the limited one x{statistics.median(beside_limited):.3f}, beside"
            f" the fed one x{statistics.median(beside_fed):.3f} of alone; limited over fed"
            f" x{statistics.median(throttling):.3f} (goal >= 0.95: throttling costs the others"
            " nothing beyond the limited one's own webhooks)"
        )
    finally:
        for bench in benches.values():
            bench.stop_worker()
            bench.redis.stop()
            await bench.http.aclose()
        receiver.terminate()
        receiver.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=20, help="the limited subscriber's /s")
    parser.add_argument("--seconds", type=float, default=20, help="its webhooks, in seconds")
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-throttle-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
