"""bench/ingest: signed, valid recording callbacks per second into one web process.

Measures, in one script and under the same load generator (wrk, one thread, 64 connections,
loopback), in alternating rounds so that a noisy machine hits both alike:
  - the baseline: a bare Starlette endpoint that reads the body and answers 200;
  - the relay's web process (`python -m service.web`, one uvicorn process) with a real Redis.
Every request to the relay is a distinct `<Record>` callback (its own recording id) with a valid
V3 signature, and no request is sent twice. Prints the median of the rounds, the ratio, and
CPU per request; checks that every `200` the relay gave left a job in Redis.

    .venv/bin/python bench/ingest.py [--duration 10] [--rounds 3] [--connections 64]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.local.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from service.plivo.signature import sign_v3  # noqa: E402
from service.storage import jobs  # noqa: E402

AUTH_ID = "MABENCHACCOUNT000001"
AUTH_TOKEN = secrets.token_urlsafe(24)
SEPARATOR = "\n#####\n"
MAX_RATE = 16_000  # callbacks/s the relay could take here at most: a round needs as many


# The web process under test gets a core of its own; the load generator and Redis share the
# other (when the machine has two or more), so that both servers are measured alike.
SERVER_CPU, LOAD_CPU = 0, 1


def pin(cpu: int) -> list[str]:
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", str(cpu)]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk from Debian's packages ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench/ingest needs wrk: install it (apt-get install wrk) and run again")
    return found


def build_requests(path: Path, count: int, port: int) -> None:
    """Raw HTTP requests, each a distinct signed `<Record>` callback."""
    url = f"http://127.0.0.1:{port}/plivo/recording"
    ended_ms = int(time.time() * 1000)  # recordings that just ended (older ones are ignored)
    with path.open("w") as out:
        for _ in range(count):
            recording_id = str(uuid.uuid4())  # Plivo's format
            params = {
                "RecordingID": recording_id,
                "RecordUrl": f"https://media.plivo.com/v1/Account/{AUTH_ID}/Recording/{recording_id}.mp3",
                "RecordingDuration": "42",
                "RecordingDurationMs": "42180",
                "RecordingStartMs": str(ended_ms - 42180),
                "RecordingEndMs": str(ended_ms),
                "CallUUID": "c2c128e2-1c8c-11e4-9bff-1db8a9db0432",
                "From": "+14155550100",
                "To": "+14155550111",
                "Direction": "inbound",
                "CallStatus": "in-progress",
            }
            nonce = secrets.token_hex(10)
            signature = sign_v3(AUTH_TOKEN, nonce, "POST", url, list(params.items()))
            body = urlencode(params)
            out.write(
                "POST /plivo/recording HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n"
                f"X-Plivo-Signature-V3: {signature}\r\n"
                f"X-Plivo-Signature-V3-Nonce: {nonce}\r\n"
                "\r\n"
                f"{body}{SEPARATOR}"
            )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_wrk(output: str) -> dict[str, float]:
    def ms(value: str, unit: str) -> float:
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rps is None or total is None:
        raise SystemExit(f"could not read wrk's output:\n{output}")
    result = {"rps": float(rps.group(1)), "requests": float(total.group(1))}
    for label, key in (("50%", "p50"), ("99%", "p99")):
        match = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", output)
        result[key] = ms(*match.groups()) if match else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["non2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    errors = re.search(r"Socket errors: (.*)", output)
    result["socket_errors"] = (
        float(sum(map(int, re.findall(r"\d+", errors.group(1))))) if errors else 0.0
    )
    return result


class Server:
    """A server process under load: start, measure, stop."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [*pin(SERVER_CPU), *command],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"{command} exited with {self.process.returncode}; see {log}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{command} not up within 30 s") from None
                time.sleep(0.05)

    def load(
        self, wrk: str, requests: Path, seconds: int, connections: int, offset: int
    ) -> dict[str, float]:
        script = Path(__file__).parent / "requests.lua"
        command = [
            *pin(LOAD_CPU), wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
            "-s", str(script), f"http://127.0.0.1:{self.port}/plivo/recording",
            "--", str(requests), "1", str(offset),
        ]  # fmt: skip
        before = cpu_seconds(self.process.pid)
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        figures = parse_wrk(output)
        figures["cpu_us"] = (cpu_seconds(self.process.pid) - before) / figures["requests"] * 1e6
        return figures

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    wrk = ensure_wrk()
    per_round = MAX_RATE * args.duration
    warmup = MAX_RATE * 2

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        with EmbeddedRedis(work / "redis", cpu=LOAD_CPU) as redis_server:
            relay_port, bare_port = free_port(), free_port()
            requests_file = work / "requests.txt"
            print(f"building {warmup + per_round * args.rounds} signed callbacks ...", flush=True)
            build_requests(requests_file, warmup + per_round * args.rounds, relay_port)
            env = {
                **os.environ,
                "PORT": str(relay_port),
                "REDIS_URL": redis_server.url,
                "PLIVO_AUTH_ID": AUTH_ID,
                "PLIVO_AUTH_TOKEN": AUTH_TOKEN,
                "ADMIN_TOKEN": secrets.token_urlsafe(16),
                "ARCHIVE_URL": f"file://{work}/archive",
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{relay_port}",
                "WEB_CONCURRENCY": "1",
            }
            bare_command = [
                sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(bare_port),
                "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
            bare = Server(bare_command, env, bare_port, work / "bare.log")
            relay = Server(
                [sys.executable, "-m", "service.web"], env, relay_port, work / "relay.log"
            )
            bare_runs, relay_runs = [], []
            try:
                bare.load(wrk, requests_file, 2, args.connections, 0)
                relay.load(wrk, requests_file, 2, args.connections, 0)
                for n in range(args.rounds):
                    offset = warmup + n * per_round
                    bare_runs.append(
                        bare.load(wrk, requests_file, args.duration, args.connections, offset)
                    )
                    relay_runs.append(
                        relay.load(wrk, requests_file, args.duration, args.connections, offset)
                    )
            finally:
                bare.stop()
                relay.stop()
            client = redis.Redis.from_url(redis_server.url)
            queued = client.zcard(jobs.QUEUE)
            client.close()

    accepted = sum(run["requests"] - run["non2xx"] for run in relay_runs)
    print(
        f"bench/ingest: {args.connections} connections, {args.rounds} rounds of {args.duration} s, "
        f"wrk -t1, one uvicorn process each; medians"
    )
    print(f"{'endpoint':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}{'non-2xx':>9}")
    for name, runs in (
        ("bare Starlette (read body, 200)", bare_runs),
        ("relay /plivo/recording", relay_runs),
    ):
        failures = sum(r["non2xx"] + r["socket_errors"] for r in runs)
        print(
            f"{name:<34}{median(runs, 'rps'):>9.0f}{median(runs, 'p50'):>9.2f}"
            f"{median(runs, 'p99'):>9.2f}{median(runs, 'cpu_us'):>12.0f}{failures:>9.0f}"
        )
    ratios = [r["rps"] / b["rps"] for r, b in zip(relay_runs, bare_runs, strict=True)]
    rounds = ", ".join(f"{x:.2f}" for x in ratios)
    print(f"ratio relay/bare: {statistics.median(ratios):.2f} (rounds: {rounds}; goal >= 0.50)")
    p99 = median(relay_runs, "p99")
    print(f"relay p99 at {args.connections} connections: {p99:.1f} ms (goal < 50 ms)")
    # wrk stops counting at the deadline, so requests still in flight then are queued uncounted.
    print(f"jobs queued in Redis: {queued}, for {accepted:.0f} callbacks answered 200 (measured)")
    if queued < accepted:
        raise SystemExit("an accepted callback left no job")


if __name__ == "__main__":
    main()
