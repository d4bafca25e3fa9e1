"""bench/memory: what each delivered recording leaves in Redis.

The Plivo sandbox with 5-minute transcripts (about 750 words, word-level `raw`), the relay's web
process and one worker, a private Redis, the archive on the file store, and one subscription
(bench/receiver.py answering 204). N recordings go through the whole pipeline; once every one
is transcribed and its three webhooks are delivered, Redis's `used_memory` is compared with
its value before them: bytes per recording, beside the size of one `recording.transcribed`
body (what the relay kept per recording and subscriber before the archive).

    .venv/bin/python bench/memory.py [--recordings 500]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
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
from service.embedded_redis import EmbeddedRedis  # noqa: E402

WORDS = 750  # about 5 minutes of speech
EVENTS = 3  # completed, transcribed, archived: the webhooks of one recording


async def settle(
    redis: aioredis.Redis, http: httpx.AsyncClient, receiver: str, ids: list[str], webhooks: int
) -> None:
    """Until every recording is transcribed, every webhook arrived and nothing is queued."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        async with redis.pipeline(transaction=False) as pipe:
            for recording_id in ids:
                pipe.hget(f"rr:recording:{recording_id}", "status")
            pipe.zcard("rr:deliveries:due")
            pipe.zcard("rr:deliveries:leased")
            *statuses, due, leased = await pipe.execute()
        stats = (await http.get(f"{receiver}/stats")).json()
        arrived = stats.get("/hook/memory", {}).get("count", 0)
        done = all(s == b"transcribed" for s in statuses)
        if done and arrived >= webhooks and due == 0 and leased == 0:
            return
        await asyncio.sleep(0.2)
    raise SystemExit("the recordings did not settle within 600 s")


async def by_kind(redis: aioredis.Redis) -> dict[str, int]:
    """`MEMORY USAGE` of every key, summed by kind of key (ids replaced by `*`)."""
    totals: dict[str, int] = {}
    async for key in redis.scan_iter(count=1000):
        name = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|msg_\w+|sub_\w+", "*", key.decode())
        totals[name] = totals.get(name, 0) + int(await redis.memory_usage(key) or 0)
    return totals


async def used_memory(redis: aioredis.Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def run(args: argparse.Namespace, work: Path) -> None:
    with EmbeddedRedis(work / "redis") as redis_server:
        site = loopback(redis_server.url, work)
        sandbox, relay, receiver, admin, env = (
            site.sandbox, site.relay, site.receiver, site.admin, site.env
        )  # fmt: skip
        receiver_port = site.receiver_port
        processes = [
            start([sys.executable, "-m", "sandbox"], env, work / "sandbox.log"),
            start([sys.executable, "-m", "service.web"], env, work / "web.log"),
            start([sys.executable, "-m", "workers"], env, work / "worker.log"),
            start(
                [sys.executable, "-m", "uvicorn", "bench.receiver:app", "--port",
                 str(receiver_port), "--log-level", "warning"],
                env,
                work / "receiver.log",
            ),
        ]  # fmt: skip
        redis = aioredis.Redis.from_url(redis_server.url)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                for url in (f"{relay}/healthz", f"{sandbox}/sandbox/stats", f"{receiver}/stats"):
                    await wait_up(url)
                await http.put(f"{sandbox}/sandbox/faults", json={"transcript_words": WORDS})
                created = await http.post(
                    f"{relay}/v1/subscriptions",
                    json={"url": f"{receiver}/hook/memory"},
                    headers={"Authorization": f"Bearer {admin}"},
                )
                assert created.status_code == 201, created.text
                # A few first, so that what is allocated once (scripts, pools) is in the base.
                warm = await record_calls(sandbox, relay, 20)
                await settle(redis, http, receiver, warm, EVENTS * len(warm))
                before, keys_before = await used_memory(redis), sum((await by_kind(redis)).values())
                ids = await record_calls(sandbox, relay, args.recordings)
                await settle(redis, http, receiver, warm + ids, EVENTS * (len(warm) + len(ids)))
                after, kinds = await used_memory(redis), await by_kind(redis)
                status = await http.get(
                    f"{relay}/v1/recordings/{ids[0]}",
                    headers={"Authorization": f"Bearer {admin}"},
                )
                body = next(
                    e for e in status.json()["events"] if e["type"] == "recording.transcribed"
                )
                event_bytes = len(httpx.Response(200, json=body).content)
            per_recording = (after - before) / len(ids)
            per_keys = (sum(kinds.values()) - keys_before) / len(ids)
            print(f"bench/memory: {len(ids)} recordings of {WORDS}-word transcripts, 1 subscriber")
            print(f"  Redis used_memory: {before:,} -> {after:,} bytes")
            print(f"  per delivered recording: {per_recording:,.0f} bytes (goal <= 4,096)")
            print(f"  the same by MEMORY USAGE of the keys: {per_keys:,.0f} bytes")
            print(f"  one recording.transcribed body: {event_bytes:,} bytes (now in the archive)")
            print(f"  ratio to that body: {per_recording / event_bytes:.3f}")
            if args.explain:
                every = len(warm) + len(ids)
                for name, total in sorted(kinds.items(), key=lambda item: -item[1])[:12]:
                    print(f"    {total / every:8,.0f} bytes/recording  {name}")
        finally:
            await redis.aclose()
            stop_all(processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=500)
    parser.add_argument("--explain", action="store_true", help="bytes by kind of key")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
