"""bench/deliver: webhooks per second from one worker process, and isolation from a hanging one.

1. Throughput: N deliveries to one subscription are queued in Redis (the relay's own fan-out
   code), then one worker process (`python -m workers`, default settings) sends them to a fast
   local receiver; timed from the first arrival to the last. Baseline, in the same run and on
   the same CPU: a bare httpx loop posting the same payloads to the same receiver with the
   same concurrency (`DELIVERY_MAX_IN_FLIGHT`, 4). Rounds alternate; the median ratio counts.
2. Isolation: events are fanned out at a steady rate to 10 subscriptions, and the receiver
   notes each webhook's latency (arrival minus queueing). Once with all 10 healthy, once with
   one of them hanging until `DELIVERY_TIMEOUT`; the p99 latency of the other 9 is compared.
3. Filters on content (run between the two): N events fanned out (the relay's `fan_out`, as
   the pipeline calls it) to one subscription without a filter, then with one of three
   conditions that all hold; the factor is the filtered fan-out's time over the plain one's.
4. OAuth2: the throughput of 1., to a receiver that takes only a bearer token from its token
   endpoint (the worker fetches one and keeps it), over the plain throughput, alternating.
(Throttling has a bench of its own: bench/throttle.py.)

The worker and the baseline run pinned to CPU 0, Redis and the receiver to CPU 1 (`taskset`).

    .venv/bin/python bench/deliver.py [--deliveries 4000] [--rounds 3] [--rate 15] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.domain.events import EventData, Media, make_event  # noqa: E402
from service.domain.subscriptions import SubscriptionCreate  # noqa: E402
from service.local.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from service.storage.deliveries import Deliveries  # noqa: E402
from service.storage.subscriptions import SubscriptionStore  # noqa: E402

IN_FLIGHT = 4  # DELIVERY_MAX_IN_FLIGHT's default, the relay's concurrency to one subscriber
DAY = "2026/12/01"  # the recordings' archive day: each attempt is also written beside them
WORKER_CPU, SERVICE_CPU = 0, 1


def pin(cpu: int) -> list[str]:
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", str(cpu)]


def payload(index: int) -> str:
    """An event the size of a real `recording.completed` (about 2 KB), with a media link for
    the deliverer to make afresh, as it does for every attempt."""
    recording_id = f"rec-{index}"
    data = EventData(
        recording_id=recording_id,
        call_uuid=None,
        recording={"queued_at": time.time(), "padding": "x" * 1600},
        callback={},
        media=Media(
            url=f"https://relay.example.com/media/{recording_id}.mp3?expires=0&signature=x",
            format="mp3",
            expires_at="2026-11-26T00:00:00Z",
        ),
    )
    return make_event("recording.completed", data).model_dump_json()


class Bench:
    def __init__(self, work: Path, redis: EmbeddedRedis, receiver: str) -> None:
        self.work = work
        self.redis = redis
        self.receiver = receiver
        self.http = httpx.AsyncClient(timeout=30)
        self.env = {
            **os.environ,
            "REDIS_URL": redis.url,
            "PLIVO_AUTH_ID": "MABENCHACCOUNT000001",
            "PLIVO_AUTH_TOKEN": secrets.token_urlsafe(16),
            "ADMIN_TOKEN": secrets.token_urlsafe(16),
            "ARCHIVE_URL": f"file://{work}/archive",
            "DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
            "LOG_LEVEL": "warning",
            **(
                {"DELIVERY_MAX_IN_FLIGHT": os.environ["IN_FLIGHT_OVERRIDE"]}
                if "IN_FLIGHT_OVERRIDE" in os.environ
                else {}
            ),
        }
        self.worker: subprocess.Popen[bytes] | None = None

    async def fresh(self) -> tuple[ArqRedis, Deliveries, SubscriptionStore]:
        """Empty Redis and receiver; the relay's store and fan-out on a new connection."""
        arq = await create_pool(RedisSettings.from_dsn(self.redis.url))
        await arq.flushall()
        await self.http.post(f"{self.receiver}/reset")
        subscriptions = SubscriptionStore(arq)
        return arq, Deliveries(arq, subscriptions), subscriptions

    def start_worker(self, log: str) -> None:
        command = [*pin(WORKER_CPU), sys.executable, "-m", "workers"]
        output = (self.work / log).open("wb")
        self.worker = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT
        )

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            try:
                self.worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        self.worker = None

    async def stats(self) -> dict[str, dict]:
        stats: dict[str, dict] = (await self.http.get(f"{self.receiver}/stats")).json()
        return stats

    async def wait_for(self, count: int, paths: list[str], within: float = 300) -> None:
        deadline = time.monotonic() + within
        while True:
            stats = await self.stats()
            if sum(stats.get(path, {}).get("count", 0) for path in paths) >= count:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"only some of {count} webhooks arrived: {stats.keys()}")
            await asyncio.sleep(0.1)

    async def rate(self, path: str, expected: int) -> float:
        """Webhooks per second at `path`, from the first arrival to the last."""
        got = (await self.stats())[path]
        if got["count"] != expected:
            raise SystemExit(f"{path}: {got['count']} webhooks arrived, not {expected}")
        return (got["count"] - 1) / (got["last"] - got["first"])

    # -- 1. throughput -----------------------------------------------------------------------

    async def relay_rate(self, bodies: list[str], path: str = "/hook/0", **fields: Any) -> float:
        """The worker's webhooks a second to one subscription at `path` (with `fields`)."""
        arq, deliveries, subscriptions = await self.fresh()
        subscription = await subscriptions.create(
            SubscriptionCreate(
                url=f"{self.receiver}{path}", events=["recording.completed"], **fields
            )
        )
        for index, body in enumerate(bodies):
            await deliveries.queue(
                subscription, f"rec-{index}", "recording.completed", body, day=DAY
            )
        self.start_worker("worker-throughput.log")
        try:
            await self.wait_for(len(bodies), [path])
        finally:
            self.stop_worker()
            await arq.aclose()
        return await self.rate(path, len(bodies))

    async def bare_rate(self, bodies: list[str]) -> float:
        """The baseline: as fast as httpx posts them, `IN_FLIGHT` at a time, on the same CPU."""
        await self.http.post(f"{self.receiver}/reset")
        before = os.sched_getaffinity(0)
        if pin(WORKER_CPU):
            os.sched_setaffinity(0, {WORKER_CPU})
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                pending = iter(bodies)
                headers = {"content-type": "application/json"}

                async def poster() -> None:
                    for body in pending:
                        url = f"{self.receiver}/hook/0"
                        (await http.post(url, content=body, headers=headers)).raise_for_status()

                await asyncio.gather(*(poster() for _ in range(IN_FLIGHT)))
        finally:
            os.sched_setaffinity(0, before)
        return await self.rate("/hook/0", len(bodies))

    # -- 3. filters on content ------------------------------------------------------------------

    async def fan_out_seconds(self, bodies: list[str], spec: dict[str, object]) -> float:
        """Seconds to fan `bodies` out to one subscription with filter `spec` ({}: none), as
        the pipeline does for each event it emits (no worker: the webhooks wait)."""
        arq, deliveries, subscriptions = await self.fresh()
        await subscriptions.create(
            SubscriptionCreate(
                url=f"{self.receiver}/hook/0", events=["recording.completed"], filter=spec
            )
        )
        started = time.perf_counter()
        for index, body in enumerate(bodies):
            await deliveries.fan_out(f"rec-{index}", "recording.completed", body, day=DAY)
        elapsed = time.perf_counter() - started
        await arq.aclose()
        return elapsed

    # -- 2. isolation --------------------------------------------------------------------------

    async def latencies(self, hanging: bool, rate: float, seconds: float) -> list[float]:
        """Latencies (s) of the 9 healthy subscribers' webhooks, with the 10th hanging or not."""
        arq, deliveries, subscriptions = await self.fresh()
        for index in range(10):
            url = (
                f"{self.receiver}/hang"
                if hanging and index == 9
                else f"{self.receiver}/hook/{index}"
            )
            await subscriptions.create(SubscriptionCreate(url=url))
        self.start_worker(f"worker-isolation-{'hanging' if hanging else 'healthy'}.log")
        try:
            await asyncio.sleep(2)  # the worker starts up (not measured: latency is per event)
            events = int(rate * seconds)
            started = time.monotonic()
            for index in range(events):
                await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
                await deliveries.fan_out(
                    f"rec-{index}", "recording.completed", payload(index), day=DAY
                )
            paths = [f"/hook/{index}" for index in range(9)]
            await self.wait_for(events * 9, paths)
        finally:
            self.stop_worker()
            await arq.aclose()
        stats = await self.stats()
        return [latency for path in paths for latency in stats[path]["latencies"]]


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    """bench/receiver.py on CPU 1, and its URL (it answers once `answering` returns)."""
    port = free_port()
    receiver = subprocess.Popen(
        [*pin(SERVICE_CPU), sys.executable, "-m", "uvicorn", "bench.receiver:app",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
    )  # fmt: skip
    return receiver, f"http://127.0.0.1:{port}"


async def answering(http: httpx.AsyncClient, receiver: str) -> None:
    for _ in range(100):
        try:
            await http.get(f"{receiver}/stats")
            return
        except httpx.HTTPError:
            await asyncio.sleep(0.1)


async def run(args: argparse.Namespace, work: Path) -> None:
    redis = EmbeddedRedis(work / "redis", cpu=SERVICE_CPU).start()
    receiver, url = start_receiver()
    bench = Bench(work, redis, url)
    try:
        await answering(bench.http, url)
        bodies = [payload(index) for index in range(args.deliveries)]
        print(f"bench/deliver: {args.deliveries} webhooks of {len(bodies[0])} bytes to one")
        print(f"subscription, one worker process, {IN_FLIGHT} in flight (CPU {WORKER_CPU})")
        ratios = []
        for round_ in range(1, args.rounds + 1):
            relay = await bench.relay_rate(bodies)
            bare = await bench.bare_rate(bodies)
            ratios.append(relay / bare)
            print(
                f"  round {round_}: relay {relay:7.0f}/s  bare httpx {bare:7.0f}/s"
                f"  ratio {relay / bare:.2f}"
            )
        print(f"  median ratio: {statistics.median(ratios):.2f} (goal >= 0.60)")
        spec: dict[str, object] = {
            "type": "recording.completed",
            "data.recording.queued_at": {"$gt": 0},
            "data.recording.recording_type": {"$exists": False},
        }
        print(f"filters: {args.deliveries} events fanned out to one subscription, without and with")
        print(f"  a filter of three conditions that all hold ({spec})")
        costs = []
        for round_ in range(1, args.rounds + 1):
            plain = await bench.fan_out_seconds(bodies, {})
            filtered = await bench.fan_out_seconds(bodies, spec)
            costs.append(filtered / plain)
            print(
                f"  round {round_}: plain {len(bodies) / plain:7.0f}/s"
                f"  filtered {len(bodies) / filtered:7.0f}/s  x{filtered / plain:.2f}"
            )
        print(f"  median cost of the filter: x{statistics.median(costs):.2f} (goal <= 1.10)")

        print(f"oauth2: {args.deliveries} webhooks to a receiver that takes only its tokens")
        oauth = {
            "auth": {
                "type": "oauth2",
                "token_url": f"{bench.receiver}/token",
                "client_id": "bench",
                "client_secret": "bench-secret",
            }
        }
        shares = []
        for round_ in range(1, args.rounds + 1):
            plain = await bench.relay_rate(bodies)
            with_token = await bench.relay_rate(bodies, "/oauth/0", **oauth)
            tokens = (await bench.stats())["/token"]["count"]
            shares.append(with_token / plain)
            print(
                f"  round {round_}: plain {plain:7.0f}/s  oauth2 {with_token:7.0f}/s"
                f"  x{with_token / plain:.2f} of the plain throughput ({tokens} token fetched)"
            )
        print(f"  median: x{statistics.median(shares):.2f} of the plain throughput (goal >= 0.90)")

        print(
            f"isolation: {args.rate:g} events/s for {args.seconds:g} s to 10 subscriptions; "
            "p99 latency of the 9 healthy ones"
        )
        factors = []
        for round_ in range(1, args.rounds + 1):
            healthy = await bench.latencies(False, args.rate, args.seconds)
            hanging = await bench.latencies(True, args.rate, args.seconds)
            factor = p99(hanging) / p99(healthy)
            factors.append(factor)
            print(
                f"  round {round_}: all healthy p50 {statistics.median(healthy) * 1000:5.1f} ms"
                f" p99 {p99(healthy) * 1000:5.1f} ms | one hanging p50"
                f" {statistics.median(hanging) * 1000:5.1f} ms p99 {p99(hanging) * 1000:5.1f} ms"
                f" | x{factor:.2f}"
            )
        print(f"  median factor: x{statistics.median(factors):.2f} (goal <= 1.2)")
    finally:
        await bench.http.aclose()
        bench.stop_worker()
        receiver.terminate()
        receiver.wait(timeout=10)
        redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=15, help="events per second (isolation)")
    parser.add_argument("--seconds", type=float, default=20, help="length of an isolation run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-deliver-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
