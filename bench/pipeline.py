"""bench/pipeline: recordings per second through one worker process, against the Plivo sandbox.

1. Throughput: N recordings are recorded in the sandbox and their callbacks accepted by the
   relay's web process; then one worker process (`python -m workers`) is started and timed
   until every recording is transcribed. Baseline, in the same run: a bare httpx loop making
   the same Plivo requests (recording, transcription request, raw, diarized) and the same
   archive writes (nine documents and the audio, streamed) for the same recordings with the
   same concurrency, no Redis, no bookkeeping. Sandbox with no latency, transcriptions ready at
   once, `--audio-bytes` of audio a recording (5 minutes of mp3 by default). The worker's peak
   RSS is printed; `--audio-only` stops there (to compare it across audio sizes).
2. Rate limit: the sandbox enforces a limit shaped like Plivo's (300 per 5 s, scaled up to keep
   the run short) and the worker is configured with the same; counts the 429s and compares the
   throughput with what the limit allows.

    .venv/bin/python bench/pipeline.py [--recordings 2000] [--limited 2000] [--limit 800]
        [--audio-bytes 2400000] [--audio-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import obstore
import redis.asyncio as aioredis
from obstore.store import from_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.local.embedded_redis import EmbeddedRedis, free_port  # noqa: E402

AUTH_ID = "MABENCHACCOUNT000001"
TOKEN = secrets.token_urlsafe(24)
CONCURRENCY = 50  # the worker's WORKER_MAX_JOBS


def relay_env(
    sandbox_port: int, relay_port: int, redis_url: str, work: Path, admin: str
) -> dict[str, str]:
    """The environment of a bench run's sandbox, web process and worker (all on loopback)."""
    return {
        **os.environ,
        "SANDBOX_PORT": str(sandbox_port),
        "SANDBOX_ACCOUNTS": f"{AUTH_ID}:{TOKEN}",
        "SANDBOX_TRANSCRIPTION_DELAY": "0",
        "PORT": str(relay_port),
        "REDIS_URL": redis_url,
        "PLIVO_AUTH_ID": AUTH_ID,
        "PLIVO_AUTH_TOKEN": TOKEN,
        "PLIVO_API_URL": f"http://127.0.0.1:{sandbox_port}",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{relay_port}",
        "ADMIN_TOKEN": admin,
        "ARCHIVE_URL": f"file://{work}/archive",
        "PLIVO_RATE_LIMIT": "1000000/1",
        "LOG_LEVEL": "warning",
    }


@dataclass(frozen=True)
class Loopback:
    """A bench run's sandbox, relay and receiver on free loopback ports, the relay's admin
    token, and the environment of their processes (webhooks allowed to loopback)."""

    sandbox: str
    relay: str
    receiver: str
    receiver_port: int
    admin: str
    env: dict[str, str]


def loopback(redis_url: str, work: Path) -> Loopback:
    sandbox_port, relay_port, receiver_port = free_port(), free_port(), free_port()
    admin = secrets.token_urlsafe(16)
    env = relay_env(sandbox_port, relay_port, redis_url, work, admin)
    env["DELIVERY_ALLOW_NETWORKS"] = "127.0.0.0/8"
    return Loopback(
        f"http://127.0.0.1:{sandbox_port}",
        f"http://127.0.0.1:{relay_port}",
        f"http://127.0.0.1:{receiver_port}",
        receiver_port,
        admin,
        env,
    )


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def peak_rss_kib(pid: int) -> int:
    """A process's peak resident memory so far (`VmHWM`)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


async def wait_up(url: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(400):
            try:
                await http.get(url, timeout=0.5)
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


async def record_calls(
    sandbox: str, relay: str, count: int, rate: float | None = None
) -> list[str]:
    """Recordings made in the sandbox, each announced to the relay with a signed callback: as
    fast as they go, or `rate` a second."""
    ids: list[str] = []
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as http:
        semaphore = asyncio.Semaphore(32)

        async def one(index: int) -> None:
            if rate:
                await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
            async with semaphore:
                response = await http.post(
                    f"{sandbox}/sandbox/calls", json={"relay_url": f"{relay}/plivo/recording"}
                )
                body = response.json()
                assert body["callback_status"] == 200, body
                ids.append(body["recording_id"])

        await asyncio.gather(*(one(index) for index in range(count)))
    return ids


async def wait_transcribed(redis_url: str, ids: list[str]) -> float:
    client = aioredis.Redis.from_url(redis_url)
    started = time.monotonic()
    while True:
        async with client.pipeline(transaction=False) as pipe:
            for recording_id in ids:
                pipe.hget(f"rr:recording:{recording_id}", "status")
            statuses = await pipe.execute()
        done = sum(status in (b"transcribed", b"failed") for status in statuses)
        if done == len(ids):
            failed = statuses.count(b"failed")
            await client.aclose()
            if failed:
                raise SystemExit(f"{failed} recordings failed")
            return time.monotonic() - started
        await asyncio.sleep(0.1)


def plivo_requests(archive: Path, ids: list[str]) -> float:
    """Plivo requests a recording, as the relay counted them (each final recording's
    `state.json` in the file store)."""
    wanted = set(ids)
    counts = [
        json.loads(path.read_text())["plivo_requests"]
        for path in archive.glob("recordings/*/*/*/*/state.json")
        if path.parent.name in wanted
    ]
    return sum(counts) / len(counts)


async def bare_loop(sandbox: str, ids: list[str], archive_dir: Path) -> float:
    """The same Plivo requests, as fast as httpx makes them, with the worker's concurrency, and
    the same writes to a file store as the relay's archive makes per recording: eight
    documents, and the audio streamed from the sandbox."""
    base = f"{sandbox}/v1/Account/{AUTH_ID}"
    semaphore = asyncio.Semaphore(CONCURRENCY)
    store = from_url(f"file://{archive_dir}", mkdir=True)
    async with httpx.AsyncClient(auth=(AUTH_ID, TOKEN), timeout=30) as http:

        async def one(recording_id: str) -> None:
            async with semaphore:
                prefix = f"bare/{recording_id}"
                recording = await http.get(f"{base}/Recording/{recording_id}/")
                recording.raise_for_status()
                await obstore.put_async(store, f"{prefix}/callback.json", b"{}")
                await obstore.put_async(store, f"{prefix}/recording.json", recording.content)
                await obstore.put_async(store, f"{prefix}/events/completed.json", b"{}")
                (
                    await http.post(f"{base}/Transcription/{recording_id}/", json={})
                ).raise_for_status()
                media = recording.json()["recording_url"]
                async with http.stream("GET", media) as answer:
                    answer.raise_for_status()
                    await obstore.put_async(
                        store, f"{prefix}/audio.mp3", answer.aiter_bytes(1024 * 1024)
                    )
                for kind in ("transcription", "raw", "diarized"):
                    if kind == "transcription":  # the relay takes it from the callback
                        content = b"{}"
                    else:
                        url = f"{base}/Transcription/{recording_id}/"
                        answer = await http.get(url, params={"type": kind})
                        answer.raise_for_status()
                        content = answer.content
                    await obstore.put_async(store, f"{prefix}/{kind}.json", content)
                await obstore.put_async(store, f"{prefix}/events/transcribed.json", b"{}")
                await obstore.put_async(store, f"{prefix}/events/archived.json", b"{}")
                await obstore.put_async(store, f"{prefix}/state.json", b"{}")

        started = time.monotonic()
        await asyncio.gather(*(one(recording_id) for recording_id in ids))
        return time.monotonic() - started


async def run(args: argparse.Namespace, work: Path) -> None:
    with EmbeddedRedis(work / "redis") as redis_server:
        sandbox_port, relay_port = free_port(), free_port()
        sandbox, relay = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{relay_port}"
        env = relay_env(sandbox_port, relay_port, redis_server.url, work, secrets.token_urlsafe(16))
        env.update(
            {
                "WORKER_MAX_JOBS": str(CONCURRENCY),
                "TRANSCRIPTION_POLL_SCHEDULE": "5",
            }
        )
        processes = [
            start([sys.executable, "-m", "sandbox"], env, work / "sandbox.log"),
            start([sys.executable, "-m", "service.web"], env, work / "web.log"),
        ]
        try:
            await wait_up(f"{relay}/healthz")
            await wait_up(f"{sandbox}/sandbox/stats")
            http = httpx.AsyncClient()
            await http.put(f"{sandbox}/sandbox/faults", json={"media_bytes": args.audio_bytes})

            # 1. throughput against the baseline
            ids = await record_calls(sandbox, relay, args.recordings)
            worker = start([sys.executable, "-m", "workers"], env, work / "worker.log")
            processes.append(worker)
            relay_seconds = await wait_transcribed(redis_server.url, ids)
            peak_kib = peak_rss_kib(worker.pid)
            per_recording = plivo_requests(work / "archive", ids)
            # the same recordings, the same requests and writes
            bare_seconds = await bare_loop(sandbox, ids, work / "bare-archive")
            relay_rate, bare_rate = len(ids) / relay_seconds, len(ids) / bare_seconds
            print(f"bench/pipeline: {len(ids)} recordings, one worker (max_jobs {CONCURRENCY})")
            print(f"  relay worker:    {relay_rate:8.1f} recordings/s ({relay_seconds:.1f} s)")
            print(f"  bare httpx loop: {bare_rate:8.1f} recordings/s ({bare_seconds:.1f} s)")
            print(f"  ratio: {relay_rate / bare_rate:.2f} (goal >= 0.60)")
            print(f"  Plivo requests per recording: {per_recording:.2f} (goal <= 4)")
            print(
                f"  audio: {args.audio_bytes:,} bytes a recording; the worker's peak RSS "
                f"{peak_kib / 1024:.0f} MiB"
            )
            if args.audio_only:
                return
            worker.terminate()
            worker.wait(timeout=30)

            # 2. under Plivo's rate limit, scaled
            limit, window = args.limit, 5.0
            # Small audio here: this phase measures the limiter, not how fast the sandbox (one
            # Python process) can make up audio.
            faults = {"rate_limit": limit, "rate_window": window, "media_bytes": 64 * 1024}
            await http.put(f"{sandbox}/sandbox/faults", json=faults)
            before = (await http.get(f"{sandbox}/sandbox/stats")).json()
            limited_ids = await record_calls(sandbox, relay, args.limited)
            worker = start(
                [sys.executable, "-m", "workers"],
                {**env, "PLIVO_RATE_LIMIT": f"{limit}/{window:g}"},
                work / "worker2.log",
            )
            processes.append(worker)
            seconds = await wait_transcribed(redis_server.url, limited_ids)
            after = (await http.get(f"{sandbox}/sandbox/stats")).json()
            per = plivo_requests(work / "archive", limited_ids)
            allowed = limit / window / per
            rate = len(limited_ids) / seconds
            print(
                f"rate limit {limit} requests per {window:g} s (Plivo's 300 per 5 s, scaled "
                f"x{limit / 300:.1f}): {len(limited_ids)} recordings"
            )
            rejected = after["rate_limited"] - before["rate_limited"]
            print(f"  429s from the sandbox: {rejected} (goal 0)")
            print(
                f"  throughput: {rate:.1f} recordings/s; the limit allows {allowed:.1f}: "
                f"{rate / allowed:.2f} of it (goal >= 0.90)"
            )
            await http.aclose()
        finally:
            stop_all(processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=2000)
    parser.add_argument("--limited", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=800, help="requests per 5 s in phase 2")
    parser.add_argument(
        "--audio-bytes", type=int, default=2_400_000, help="each recording's audio (5 min of mp3)"
    )
    parser.add_argument(
        "--audio-only", action="store_true", help="phase 1 only (for the worker's peak RSS)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
