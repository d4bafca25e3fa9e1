"""bench/erasure: erasing every recording of one phone number among N archived recordings.

The archive (the file store, in a temporary folder) is filled as the relay fills it: N
recordings over 100 days, each with its documents, its audio and its index entries
(`SubjectIndex.write`, the relay's own code), `--subject` of them of one number. Then, in the
same run: an erasure by that number (`POST /v1/erasures`' path: `Erasures.erase_subject`, then
the worker's `Eraser.run`, the relay's own code, against a real Redis and the Plivo sandbox
served on loopback), timed and its store requests counted (`Archive.requests`, as S3 bills
them); and beside it, the baseline: one full listing of the archive, which an erasure without
the index would need, timed and counted the same way.

Goal (issue 21): under 1 s and at most 10 store requests plus 3 per recording erased, whatever
the archive's size.

    .venv/bin/python bench/erasure.py [--recordings 100000] [--subject 5]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import uvicorn
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.app import create_sandbox  # noqa: E402
from service.domain.erasure import Progress, SubjectRequest  # noqa: E402
from service.local.embedded_redis import EmbeddedRedis  # noqa: E402
from service.operations.erasures import Erasures  # noqa: E402
from service.plivo.client import PlivoClient  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.storage.archive import Archive  # noqa: E402
from service.storage.audit import AuditLog  # noqa: E402
from service.storage.deliveries import Claimed, Deliveries  # noqa: E402
from service.storage.erasures import ErasureStore  # noqa: E402
from service.storage.holds import Holds  # noqa: E402
from service.storage.rate_limit import RateLimiter  # noqa: E402
from service.storage.recordings import RecordingStore  # noqa: E402
from service.storage.subject_index import SubjectIndex  # noqa: E402
from service.storage.subscriptions import SubscriptionStore  # noqa: E402
from workers.erasure import Eraser  # noqa: E402

AUTH_ID, AUTH_TOKEN = "MA" + "B" * 18, "bench-token"
NUMBER = "+14155550123"
KEY = b"bench-index-key"
OBJECTS = ("callback.json", "recording.json", "state.json", "transcript.txt", "audio.mp3")


class Filling(Archive):
    """The archive as the bench fills it: each object written straight to its file (what the
    file store's `put` leaves, without a temporary file and a rename a write), so that 100,000
    recordings take a minute, not ten."""

    async def put(self, key: str, data: bytes) -> None:
        path = self.local_path(key)
        assert path is not None
        try:
            path.write_bytes(data)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


class NoDispatch:
    holder = "bench"

    def room(self) -> int:
        return 0

    def submit(self, deliveries: list[Claimed]) -> None:
        pass


async def fill(archive: Filling, index: SubjectIndex, count: int, subject: int) -> list[str]:
    """`count` archived recordings, `subject` of them of NUMBER; their ids, the subject's."""
    ours = set(range(0, count, max(1, count // subject))[:subject])
    theirs: list[str] = []
    started = time.monotonic()

    async def one(n: int) -> None:
        recording_id = str(uuid.UUID(int=n + 1, version=4))
        day = f"2026/{8 + n % 100 // 31:02d}/{1 + n % 100 % 28:02d}"
        number = NUMBER.lstrip("+") if n in ours else f"1415{n:07d}"
        for name in OBJECTS:
            await archive.put(f"recordings/{day}/{recording_id}/{name}", b"x" * 64)
        await index.write(recording_id, day, AUTH_ID, {number, "14155559999"}, str(uuid.uuid4()))
        if n in ours:
            theirs.append(recording_id)

    for start in range(0, count, 500):
        await asyncio.gather(*(one(n) for n in range(start, min(count, start + 500))))
        if start % 10_000 == 0:
            print(f"  filled {start} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return theirs


async def main(recordings: int, subject: int) -> None:
    # In memory where the machine has it (/dev/shm): the listing and the erasure both read it.
    memory = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: ASYNC240
    work = Path(tempfile.mkdtemp(prefix="bench-erasure-", dir=memory))
    sandbox_app = create_sandbox({AUTH_ID: AUTH_TOKEN})
    sandbox = sandbox_app.state.sandbox
    server = uvicorn.Server(uvicorn.Config(sandbox_app, port=0, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn says so by a flag only)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with EmbeddedRedis(work / "redis") as redis_server:
            settings = Settings.model_validate(
                {
                    "redis_url": redis_server.url,
                    "archive_url": f"file://{work / 'archive'}",
                    "plivo_auth_id": AUTH_ID,
                    "plivo_auth_token": AUTH_TOKEN,
                    "plivo_api_url": f"http://127.0.0.1:{port}",
                    "erasure_index_key": "bench-index-key",
                    "admin_token": "bench-admin-token",
                }
            )
            redis = Redis.from_url(settings.redis_url)
            print(f"filling the archive with {recordings} recordings...", file=sys.stderr)
            filling = Filling(settings.archive_url)
            theirs = await fill(filling, SubjectIndex(filling, KEY), recordings, subject)
            archive = Archive(settings.archive_url)
            index = SubjectIndex(archive, KEY)
            for recording_id in theirs:  # Plivo holds them too
                made = sandbox.state.new_recording(AUTH_ID, 30_000)
                account = sandbox.state.accounts[AUTH_ID]
                account.recordings[recording_id] = {**made, "recording_id": recording_id}

            archive.requests = 0
            started = time.perf_counter()
            listed = await archive.keys("")
            list_seconds = time.perf_counter() - started
            list_requests = archive.requests

            store = RecordingStore(redis, 30)
            erasures = ErasureStore(redis, 30)
            plivo = PlivoClient(
                settings.plivo_api_url,
                settings.credentials(),
                limiter=RateLimiter(redis, 300, 5.0),
            )
            deliveries = Deliveries(redis, SubscriptionStore(redis, 10))
            asking = Erasures(erasures, store, index, Holds(archive), AuditLog(archive))
            eraser = Eraser(
                settings, erasures, store, archive, index, plivo, deliveries, NoDispatch(), redis
            )
            archive.requests = 0
            started = time.perf_counter()
            erasure = await asking.erase_subject(SubjectRequest(phone_number=NUMBER), "bench")
            outcome = await eraser.run(erasure.id, budget=60)
            erase_seconds = time.perf_counter() - started
            erase_requests = archive.requests
            done = await erasures.get(erasure.id)
            assert done is not None and done.status == Progress.DONE, (done, outcome)
            assert done.erased == len(theirs), done
            left = [k for k in await archive.keys("recordings") if any(t in k for t in theirs)]
            assert not left, left[:3]
            await plivo.aclose()
            await redis.aclose()

        budget = 10 + 3 * len(theirs)
        print(
            f"bench/erasure: {recordings} recordings archived ({len(listed)} objects), "
            f"{len(theirs)} of one number"
        )
        print(f"  baseline, one full listing: {list_seconds:.3f} s, {list_requests} requests")
        print(
            f"  erasure by number:          {erase_seconds:.3f} s, {erase_requests} requests "
            f"(goal < 1 s and <= {budget}): {outcome}"
        )
        print(
            f"  erasure / listing: x{erase_seconds / list_seconds:.3f} of the time, "
            f"x{erase_requests / list_requests:.4f} of the requests"
        )
    finally:
        server.should_exit = True
        await serving
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=100_000)
    parser.add_argument("--subject", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.recordings, args.subject))
