"""bench/latency: how long an event takes from Plivo's callback to the subscriber, at light load.

1. Latency: the sandbox records calls at a steady rate (`--rate` a second for `--seconds`) and
   sends each recording callback to the relay's web process; one worker process does the rest;
   a healthy subscriber (bench/receiver.py, answering 204) notes when each event arrives. For
   every recording: from the recording callback's 200 (the sandbox notes when it got it) to
   `recording.completed` at the subscriber, and from the transcription callback's 200 to
   `recording.transcribed`. Floor, in the same run and at the same pace: a bare httpx loop
   doing one GET to the sandbox (the recording) and one POST of a 2 KB event to the receiver;
   for the transcription, two GETs (`raw`, `diarized`) and the POST.
2. With `--backfill N`: the same again while a backfill takes up N old recordings (lost
   callbacks, two days ago) through `POST /v1/backfills`: a live recording's latency beside
   a backfill, against the run without (the ratio).
3. Idle: Redis commands per second (`INFO commandstats`, less `INFO` itself) over `--idle`
   seconds with nothing to do: the web process alone, then with one worker process.

Plivo (the sandbox) answers at once; transcriptions are ready 0.5 s after they are requested.

    .venv/bin/python bench/latency.py [--rate 5] [--seconds 20] [--idle 60] [--backfill 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import AUTH_ID, TOKEN, loopback, start, stop_all, wait_up  # noqa: E402
from service.local.embedded_redis import EmbeddedRedis, free_port  # noqa: E402

GOAL_P50, GOAL_P99 = 15.0, 50.0  # ms, from the callback's 200 to the event at the subscriber
EVENT = {"type": "recording.completed", "data": {"padding": "x" * 2000}}


def quantiles(values: list[float]) -> tuple[float, float]:
    """p50 and p99, in ms."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


async def paced(rate: float, count: int, one: Callable[[int], Awaitable[None]]) -> None:
    """`one(i)` for i in range(count), started `rate` times a second, each in its own task."""
    started = time.monotonic()
    tasks = []
    for index in range(count):
        await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)


async def floor(
    http: httpx.AsyncClient, sandbox: str, receiver: str, ids: list[str], args: argparse.Namespace
) -> tuple[list[float], list[float]]:
    """The bare loop: (GET recording + POST) and (GET raw + GET diarized + POST) times, in s."""
    api = f"{sandbox}/v1/Account/{AUTH_ID}"
    auth = (AUTH_ID, TOKEN)
    body = json.dumps(EVENT)
    headers = {"content-type": "application/json"}
    completed: list[float] = []
    transcribed: list[float] = []

    async def one(index: int) -> None:
        recording_id = ids[index % len(ids)]
        began = time.perf_counter()
        (await http.get(f"{api}/Recording/{recording_id}/", auth=auth)).raise_for_status()
        (await http.post(f"{receiver}/floor", content=body, headers=headers)).raise_for_status()
        completed.append(time.perf_counter() - began)
        began = time.perf_counter()
        for kind in ("raw", "diarized"):
            url = f"{api}/Transcription/{recording_id}/"
            (await http.get(url, params={"type": kind}, auth=auth)).raise_for_status()
        (await http.post(f"{receiver}/floor", content=body, headers=headers)).raise_for_status()
        transcribed.append(time.perf_counter() - began)

    await paced(args.rate, int(args.rate * args.seconds), one)
    return completed, transcribed


async def call(http: httpx.AsyncClient, sandbox: str, relay: str) -> str:
    response = await http.post(
        f"{sandbox}/sandbox/calls", json={"relay_url": f"{relay}/plivo/recording"}
    )
    answer = response.json()
    if answer["callback_status"] != 200:
        raise SystemExit(f"the relay answered the callback {answer['callback_status']}")
    return str(answer["recording_id"])


async def arrived(http: httpx.AsyncClient, receiver: str, ids: list[str]) -> dict[str, float]:
    """When each recording's two events arrived, once all have (or after a minute)."""
    wanted = {
        f"{kind} {i}" for i in ids for kind in ("recording.completed", "recording.transcribed")
    }
    deadline = time.monotonic() + 60
    while True:
        arrivals: dict[str, float] = (await http.get(f"{receiver}/arrivals")).json()
        if wanted <= arrivals.keys():
            return arrivals
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(wanted - arrivals.keys())} events did not arrive in a minute")
        await asyncio.sleep(0.2)


async def relay_latencies(
    http: httpx.AsyncClient, sandbox: str, relay: str, receiver: str, args: argparse.Namespace
) -> tuple[list[float], list[float]]:
    ids: list[str] = []

    async def one(_: int) -> None:
        ids.append(await call(http, sandbox, relay))

    await paced(args.rate, int(args.rate * args.seconds), one)
    arrivals = await arrived(http, receiver, ids)
    answered = {
        (sent["kind"], sent["recording_id"]): sent["answered_at"]
        for sent in (await http.get(f"{sandbox}/sandbox/callbacks")).json()
    }
    completed = [arrivals[f"recording.completed {i}"] - answered["recording", i] for i in ids]
    transcribed = [
        arrivals[f"recording.transcribed {i}"] - answered["transcription", i] for i in ids
    ]
    return completed, transcribed


async def commands(redis: aioredis.Redis) -> int:
    """Commands Redis has run so far, less its `INFO`s (the bench's own)."""
    stats = await redis.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


async def idle_rate(redis: aioredis.Redis, seconds: float) -> float:
    before = await commands(redis)
    await asyncio.sleep(seconds)
    return (await commands(redis) - before) / seconds


async def start_backfill(
    http: httpx.AsyncClient, sandbox: str, relay: str, admin: str, count: int
) -> str:
    """`count` recordings of two days ago whose callbacks never came, and a backfill of them
    (running once this returns); its id."""
    day = datetime.now(UTC) - timedelta(days=2)
    lost = f"http://127.0.0.1:{free_port()}/plivo/recording"
    for index in range(count):
        moment = (day + timedelta(seconds=index)).isoformat()
        body = {"relay_url": lost, "callback": False, "added_at": moment}
        (await http.post(f"{sandbox}/sandbox/calls", json=body)).raise_for_status()
    headers = {"authorization": f"Bearer {admin}"}
    window = {
        "since": (day - timedelta(hours=1)).isoformat(),
        "until": datetime.now(UTC).isoformat(),
    }
    answer = await http.post(f"{relay}/v1/backfills", json=window, headers=headers)
    answer.raise_for_status()
    backfill_id = str(answer.json()["id"])
    while (await backfill_state(http, relay, admin, backfill_id))["found"] < 40:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    return backfill_id


async def backfill_state(
    http: httpx.AsyncClient, relay: str, admin: str, backfill_id: str
) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {admin}"}
    answer = await http.get(f"{relay}/v1/backfills/{backfill_id}", headers=headers)
    return dict(answer.json())


def line(name: str, values: list[float]) -> str:
    p50, p99 = quantiles(values)
    return f"  {name:<44} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   ({len(values)})"


async def run(args: argparse.Namespace, work: Path) -> None:
    with EmbeddedRedis(work / "redis") as redis_server:
        site = loopback(redis_server.url, work)
        sandbox, relay, receiver, admin, env = (
            site.sandbox, site.relay, site.receiver, site.admin, site.env
        )  # fmt: skip
        receiver_port = site.receiver_port
        env["SANDBOX_TRANSCRIPTION_DELAY"] = "0.5"
        uvicorn = [sys.executable, "-m", "uvicorn", "bench.receiver:app", "--log-level", "warning"]
        processes = [
            start([sys.executable, "-m", "sandbox"], env, work / "sandbox.log"),
            start([sys.executable, "-m", "service.web"], env, work / "web.log"),
            start([*uvicorn, "--port", str(receiver_port)], env, work / "receiver.log"),
        ]
        redis = aioredis.Redis.from_url(redis_server.url)
        http = httpx.AsyncClient(timeout=30)
        try:
            for url in (f"{relay}/healthz", f"{sandbox}/sandbox/stats", f"{receiver}/stats"):
                await wait_up(url)
            if args.idle:
                await asyncio.sleep(2)  # the web process's start-up is not idleness
                web_idle = await idle_rate(redis, args.idle)
            worker = start([sys.executable, "-m", "workers"], env, work / "worker.log")
            processes.append(worker)
            subscription = await http.post(
                f"{relay}/v1/subscriptions",
                json={
                    "url": f"{receiver}/hook/latency",
                    "events": ["recording.completed", "recording.transcribed"],
                },
                headers={"authorization": f"Bearer {admin}"},
            )
            subscription.raise_for_status()
            warm = [await call(http, sandbox, relay) for _ in range(5)]
            await arrived(http, receiver, warm)

            bare_completed, bare_transcribed = await floor(http, sandbox, receiver, warm, args)
            completed, transcribed = await relay_latencies(http, sandbox, relay, receiver, args)
            if args.backfill:
                backfill_id = await start_backfill(http, sandbox, relay, admin, args.backfill)
                before = await backfill_state(http, relay, admin, backfill_id)
                beside = await relay_latencies(http, sandbox, relay, receiver, args)
                after = await backfill_state(http, relay, admin, backfill_id)
            if args.idle:
                await asyncio.sleep(5)  # the last attempts are settled
                worker_idle = await idle_rate(redis, args.idle) - web_idle

            print(
                f"bench/latency: {args.rate:g} recordings/s for {args.seconds:g} s, one web "
                "process and one worker, Plivo answering at once"
            )
            print(line("floor: GET recording + POST event", bare_completed))
            print(line("relay: callback 200 -> recording.completed", completed))
            print(line("floor: GET raw + GET diarized + POST event", bare_transcribed))
            print(line("relay: callback 200 -> recording.transcribed", transcribed))
            # The two floors differ by one GET: the transcribed goals allow two more.
            gets = 2 * (quantiles(bare_transcribed)[0] - quantiles(bare_completed)[0])
            print(
                f"  goals: p50 <= {GOAL_P50:g} ms, p99 <= {GOAL_P99:g} ms; recording.transcribed "
                f"plus the two GETs (about {gets:.1f} ms at p50)"
            )
            if args.backfill:
                taken = after["queued"] - before["queued"]
                print(
                    f"beside a backfill of {args.backfill} old recordings ({taken} taken up "
                    f"meanwhile, {after['status']} at the end):"
                )
                print(line("relay: callback 200 -> recording.completed", beside[0]))
                print(line("relay: callback 200 -> recording.transcribed", beside[1]))
                for name, alone, with_backfill in (
                    ("recording.completed", completed, beside[0]),
                    ("recording.transcribed", transcribed, beside[1]),
                ):
                    p50, p99 = quantiles(alone)
                    b50, b99 = quantiles(with_backfill)
                    print(
                        f"  {name}: p50 x{b50 / p50:.2f}, p99 x{b99 / p99:.2f} of the run "
                        "without a backfill"
                    )
            if args.idle:
                print(f"idle, over {args.idle:g} s each (INFO commandstats, less INFO):")
                print(f"  web process:    {web_idle:6.2f} Redis commands/s (goal 0)")
                print(f"  worker process: {worker_idle:6.2f} Redis commands/s (goal <= 2)")
        finally:
            await http.aclose()
            await redis.aclose()
            stop_all(processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5, help="recordings a second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--idle", type=float, default=60, help="seconds of idleness (0: skip)")
    parser.add_argument(
        "--backfill", type=int, default=0, help="old recordings to backfill beside (0: skip)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
