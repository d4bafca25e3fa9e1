"""The `worker` process of the Procfile, `python -m workers`, and the backfill command.

If Redis goes away (a restart, a failover) the worker does not exit: it waits until Redis
answers again and carries on (`workers.worker.WorkerProcess`). Jobs it was running are taken up
again when their locks lapse (`WORKER_JOB_TIMEOUT` + 10 s), so nothing is lost, and the PaaS
sees no crash to back off from. SIGTERM ends it within `WORKER_SHUTDOWN_GRACE` seconds.

`python -m workers backfill --since 2026-10-01 [--until 2026-11-01] [--no-transcribe]` puts the
recordings of that window the relay has never seen through the pipeline (the workers do the
work; this finds and queues it), with progress, and a summary at the end. Interrupted, the same
command resumes where it stopped (`workers.reconciliation`). It walks at once, whatever the
turn of the backfills asked for through the API, and no worker walks the same one meanwhile.
Its exit status: 0 done, 1 failed or cancelled (or a worker walks it now), 2 a bad window.

`python -m workers retranscribe --since 2026-10-01 [--until 2026-11-01]` brings the transcripts
the archive holds for those days up to today's `REDACT` and transcript forms, asking Plivo
nothing (`workers.retranscribe`); interrupted, the same command resumes. Exit status: 0 done,
2 a bad window.

`python -m workers reindex` writes the archive's index of who each recording is of (erasure by
person) for the recordings archived before it existed (`workers.reindex`), with progress;
interrupted, the same command resumes. Exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from datetime import UTC, date, datetime

from tqdm import tqdm

from service.domain.redaction import Redactor
from service.logs import configure
from service.settings import Settings, load_settings
from service.storage import connections, jobs, server
from service.storage.archive import require
from service.storage.reconciliation import Backfill, BackfillStatus
from workers.reindex import Reindexer
from workers.retranscribe import Counts, Retranscriber
from workers.worker import WorkerProcess

HOLD_MS = 30_000  # the command's hold on its backfill's job, renewed every 10 s


async def serve(settings: Settings) -> int:
    """Run the worker until it is told to stop; its exit status."""
    process = WorkerProcess(settings)
    process.install_signal_handlers()
    await process.run()
    return process.exit_status


async def backfill(settings: Settings, since: str, until: str | None, transcribe: bool) -> int:
    """Run a backfill here, showing its progress; the exit status."""
    process = WorkerProcess(settings)  # its clients; it takes no jobs
    reconciler = process.reconciler
    try:
        job, resumed = await reconciler.backfills.begin(since, until, transcribe)
    except ValueError as error:
        print(f"backfill: {error}", file=sys.stderr)
        await process.close_clients()
        return 2
    if resumed:
        print(f"backfill {job.id}: resuming ({job.summary()} so far)", file=sys.stderr)
    else:
        print(f"backfill {job.id}: {job.since} to {job.until}", file=sys.stderr)
    terminal = sys.stderr.isatty()
    bar = tqdm(desc="recordings", unit=" found", initial=job.found, disable=not terminal)

    def progress(now: Backfill) -> None:
        if terminal:
            bar.update(now.found - bar.n)
            bar.set_postfix(queued=now.queued, known=now.known)
        else:  # a log, not a terminal: plain lines
            print(f"backfill {now.id}: {now.summary()}", file=sys.stderr, flush=True)

    # No worker runs this backfill's job while this command walks it (whatever its turn).
    redis, holder = process.redis, f"command:{secrets.token_hex(8)}"

    async def keep_holding() -> None:
        # A lease renewed on a clock: there is no event to wait on.
        while await jobs.hold(redis, jobs.RUN_BACKFILL, job.id, holder, HOLD_MS):  # noqa: ASYNC110
            await asyncio.sleep(HOLD_MS / 3000)

    holding: asyncio.Task[None] | None = None
    try:
        if not await jobs.hold(redis, jobs.RUN_BACKFILL, job.id, holder, HOLD_MS):
            print(f"backfill {job.id}: a worker runs it now: follow it with GET /v1/backfills")
            return 1
        holding = asyncio.create_task(keep_holding())
        job = await reconciler.backfill(job, progress)
        if job.ended:
            await reconciler.take_turns()
    finally:
        bar.close()
        if holding is not None:
            holding.cancel()
            await asyncio.gather(holding, return_exceptions=True)
            await jobs.let_go(redis, jobs.RUN_BACKFILL, job.id, holder)
        await process.close_clients()
    print(f"backfill {job.id} {job.status}: {job.summary()}")
    return 0 if job.status == BackfillStatus.DONE else 1


async def retranscribe(settings: Settings, since: str, until: str | None) -> int:
    """Retranscribe the window's archived recordings here, showing progress; the exit status."""
    try:
        first = date.fromisoformat(since)
        last = date.fromisoformat(until) if until else datetime.now(UTC).date()
    except ValueError as error:
        print(f"retranscribe: --since and --until are dates (2026-10-01): {error}", file=sys.stderr)
        return 2
    if last < first:
        print("retranscribe: --until is before --since", file=sys.stderr)
        return 2
    process = WorkerProcess(settings)  # its clients; it takes no jobs
    redactor = Redactor.named(settings.redact)
    terminal = sys.stderr.isatty()
    bar = tqdm(desc="recordings", unit=" seen", disable=not terminal)

    def progress(now: Counts) -> None:
        if terminal:
            bar.update(now.seen - bar.n)
            bar.set_postfix(rewritten=now.rewritten, redacted=now.redacted)

    try:
        done = await Retranscriber(process.archive, process.redis, redactor).run(
            first, last, progress
        )
    finally:
        bar.close()
        await process.close_clients()
    print(
        f"retranscribe {first} to {last}: {done.seen} recordings looked at, {done.rewritten} "
        f"rewritten, {done.redacted} items redacted"
    )
    return 0


async def reindex(settings: Settings) -> int:
    """Index the whole archive here, showing progress; the exit status."""
    process = WorkerProcess(settings)  # its clients; it takes no jobs
    terminal = sys.stderr.isatty()
    bar = tqdm(desc="recordings", unit=" seen", disable=not terminal)

    def progress(seen: int, indexed: int) -> None:
        if terminal:
            bar.update(seen - bar.n)
            bar.set_postfix(indexed=indexed)
        elif seen % 1000 == 0:
            print(f"reindex: {seen} recordings seen, {indexed} indexed", file=sys.stderr)

    try:
        seen, indexed = await Reindexer(process.archive, process.redis, process.index).run(progress)
    finally:
        bar.close()
        await process.close_clients()
    print(f"reindex: {seen} recordings looked at, {indexed} indexed by number or call")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m workers")
    commands = parser.add_subparsers(dest="command")
    command = commands.add_parser("backfill", help="take up the recordings of a past window")
    command.add_argument("--since", required=True, help="ISO 8601 date or time (UTC)")
    command.add_argument("--until", help="ISO 8601 date or time (UTC); default: now")
    command.add_argument(
        "--no-transcribe",
        action="store_true",
        help="archive and announce the recordings without buying transcriptions",
    )
    command = commands.add_parser(
        "retranscribe", help="redact and rebuild the archived transcripts of past days"
    )
    command.add_argument("--since", required=True, help="ISO 8601 date (UTC)")
    command.add_argument("--until", help="ISO 8601 date (UTC); default: today")
    commands.add_parser(
        "reindex", help="index the archive by who each recording is of (erasure by person)"
    )
    args = parser.parse_args()
    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    require(settings.archive_url)
    server.require(settings.redis_url_for_logs, connections.web(settings))
    if args.command == "retranscribe":
        raise SystemExit(asyncio.run(retranscribe(settings, args.since, args.until)))
    if args.command == "reindex":
        raise SystemExit(asyncio.run(reindex(settings)))
    if args.command == "backfill":
        transcribe = not args.no_transcribe
        raise SystemExit(asyncio.run(backfill(settings, args.since, args.until, transcribe)))
    raise SystemExit(asyncio.run(serve(settings)))


if __name__ == "__main__":
    main()
