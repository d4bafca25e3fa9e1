"""What reconciliation and backfill keep in Redis: who sweeps, how far each account is swept,
and each backfill's window and progress (keys: `service.storage.keys`).

- The sweep lock is taken with `SET NX PX RECONCILE_INTERVAL`, and left to lapse rather than
  released: however many workers run, one sweep starts per interval, and a sweeper that dies
  holds nothing longer than that.
- A watermark is the moment up to which an account's recordings have all been taken up. It is
  written only after a whole sweep, so a sweep cut short is repeated, never skipped.
- A backfill is a hash: its window, whether to transcribe, its status, how far it got
  (`slice`, `cursor`: the pages fully handled) and its counts. Backfills wait their turn in a
  line (a zset, oldest first): the first `BACKFILL_CONCURRENCY` of it run, each in one worker
  job (`wake` queues theirs: queuing a job that exists already does nothing), and one leaves it
  as it ends (`done`, `failed`, `cancelled`). Every write goes through one script that leaves
  an ended backfill as it is, so a walk still going when it was cancelled changes nothing.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from redis.asyncio import Redis

from service.storage import jobs, keys, lua

BACKFILL_REACH = timedelta(days=3653)
SAVE = lua.source("save_backfill")


def _field(value: object) -> str:
    """A backfill's field as its hash holds it."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return "" if value is None else str(value)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class SweepState:
    """Whose turn it is to sweep Plivo's list, and how far each account's sweep got."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def take_turn(self, interval: float) -> bool:
        """Whether this worker sweeps now (no other did within `interval` seconds)."""
        token = secrets.token_hex(8)
        taken = await self.redis.set(keys.RECONCILE_LOCK, token, nx=True, px=int(interval * 1000))
        return bool(taken)

    async def watermark(self, auth_id: str, now: datetime) -> datetime | None:
        """How far `auth_id` is swept; None on the first sweep ever, which sets it to `now`:
        the relay does not take up the account's past by surprise (backfill is for that)."""
        key = keys.reconcile_watermark(auth_id)
        if await self.redis.set(key, iso(now), nx=True):
            return None
        raw = await self.redis.get(key)
        return datetime.fromisoformat(raw.decode()) if raw else None

    async def advance(self, auth_id: str, to: datetime) -> None:
        await self.redis.set(keys.reconcile_watermark(auth_id), iso(to))


class BackfillStatus(StrEnum):
    """Where a backfill is: in the line, walked by a worker, or ended (the last three)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


ENDED = (BackfillStatus.DONE, BackfillStatus.FAILED, BackfillStatus.CANCELLED)


@dataclass
class Backfill:
    """A backfill's window (`since` to `until`, ISO 8601, UTC) and progress."""

    id: str
    since: str
    until: str
    transcribe: bool = True
    status: BackfillStatus = BackfillStatus.QUEUED
    slice: int = 0  # the (account, 30-day slice) pairs fully handled
    cursor: str = ""  # in the current one, the add_time down to which pages are handled
    found: int = 0
    known: int = 0  # already known to the relay: nothing done
    queued: int = 0
    error: str | None = None
    started_at: str = ""
    updated_at: str = ""

    @staticmethod
    def id_for(since: str, until: str | None, transcribe: bool) -> str:
        """The same window and choice name the same backfill, so running it again resumes."""
        digest = hashlib.sha256(f"{since}\n{until}\n{transcribe}".encode()).hexdigest()
        return f"bf_{digest[:20]}"

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def summary(self) -> str:
        return f"found {self.found}, already known {self.known}, queued {self.queued}"


class BackfillStore:
    """The backfills in Redis: their line, their progress, their history."""

    def __init__(self, redis: Redis, retention_days: int) -> None:
        self.redis = redis
        self.ttl = retention_days * 86_400
        self._save = redis.register_script(SAVE)

    async def begin(self, since: str, until: str | None, transcribe: bool) -> tuple[Backfill, bool]:
        """The backfill of this window and choice (`ValueError` naming a bad bound), saved at
        the end of the line, and whether it is one asked for before and not ended (the same
        window names the same backfill: asking again answers it as it is)."""
        start, end = window(since, until)
        backfill_id = Backfill.id_for(start, until and end, transcribe)
        earlier = await self.get(backfill_id)
        if earlier is not None and not earlier.ended:
            await self._join_line(backfill_id)  # one a version without a line left running
            return earlier, True
        backfill = Backfill(backfill_id, start, end, transcribe)
        await self._write(backfill, "new")
        return backfill, False

    async def get(self, backfill_id: str) -> Backfill | None:
        if not backfill_id.startswith("bf_") or len(backfill_id) > 40:
            return None
        raw = await self.redis.hgetall(keys.backfill(backfill_id))  # type: ignore[misc]
        return _read(backfill_id, raw) if raw else None

    async def recent(self, count: int = 50) -> list[Backfill]:
        """The latest backfills asked for, newest first."""
        ids = [i.decode() for i in await self.redis.zrevrange(keys.BACKFILL_HISTORY, 0, count - 1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for backfill_id in ids:
                pipe.hgetall(keys.backfill(backfill_id))
            found = await pipe.execute()
        return [_read(i, raw) for i, raw in zip(ids, found, strict=True) if raw]

    async def runs_now(self, backfill_id: str, concurrency: int) -> bool:
        """Whether `backfill_id` is among the first `concurrency` of the line (its turn)."""
        place = await self.redis.zrank(keys.BACKFILL_LINE, backfill_id)
        if place is None:  # one a version without a line left running
            await self._join_line(backfill_id)
            place = await self.redis.zrank(keys.BACKFILL_LINE, backfill_id)
        return place is not None and place < concurrency

    async def _join_line(self, backfill_id: str) -> None:
        await self.redis.zadd(keys.BACKFILL_LINE, {backfill_id: time.time() * 1000}, nx=True)

    async def wake(self, concurrency: int) -> int:
        """Queue the job of each backfill whose turn it is (a job queued or running already
        stays as it is: this is also how a backfill whose job died goes on); how many."""
        turn = await self.redis.zrange(keys.BACKFILL_LINE, 0, concurrency - 1)
        woken = 0
        for backfill_id in turn:
            woken += await jobs.enqueue(self.redis, jobs.RUN_BACKFILL, backfill_id.decode())
        return woken

    async def save(self, backfill: Backfill) -> bool:
        """Write how far `backfill` got; False (and its status as stored) if it had ended,
        cancelled meanwhile: nothing is written then."""
        return await self._write(backfill, "end" if backfill.ended else "progress")

    async def cancel(self, backfill_id: str) -> Backfill | None:
        """End a queued or running backfill as `cancelled` (an ended one stays as it is); the
        backfill as it is now, None if unknown."""
        backfill = await self.get(backfill_id)
        if backfill is None or backfill.ended:
            return backfill
        backfill.status = BackfillStatus.CANCELLED
        await self._write(backfill, "end")
        return await self.get(backfill_id)

    async def _write(self, backfill: Backfill, step: str) -> bool:
        now = datetime.now(UTC)
        backfill.updated_at = iso(now)
        backfill.started_at = backfill.started_at or backfill.updated_at
        fields = [
            part
            for name, value in asdict(backfill).items()
            if name != "id"
            for part in (name, _field(value))
        ]
        refused = await self._save(
            keys=[keys.backfill(backfill.id), keys.BACKFILL_LINE, keys.BACKFILL_HISTORY],
            args=[self.ttl, step, backfill.id, int(time.time() * 1000), *fields],
        )
        if refused:
            status = refused.decode() if isinstance(refused, bytes) else str(refused)
            gone = status == "gone"
            backfill.status = BackfillStatus.CANCELLED if gone else BackfillStatus(status)
            return False
        return True


def _read(backfill_id: str, raw: dict[bytes, bytes]) -> Backfill:
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    return Backfill(
        id=backfill_id,
        since=fields["since"],
        until=fields["until"],
        transcribe=fields.get("transcribe") == "1",
        status=BackfillStatus(fields.get("status", BackfillStatus.QUEUED)),
        slice=int(fields.get("slice", 0)),
        cursor=fields.get("cursor", ""),
        found=int(fields.get("found", 0)),
        known=int(fields.get("known", 0)),
        queued=int(fields.get("queued", 0)),
        error=fields.get("error") or None,
        started_at=fields.get("started_at", ""),
        updated_at=fields.get("updated_at", ""),
    )


def window(since: str, until: str | None) -> tuple[str, str]:
    """A backfill's window as ISO 8601 UTC; `ValueError` naming the problem."""

    def moment(raw: str, name: str) -> datetime:
        try:
            parsed = datetime.fromisoformat(raw)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            raise ValueError(f"{name}: not a date or time (ISO 8601: 2026-10-01)") from None

    now = datetime.now(UTC)
    start = moment(since, "since")
    end = now if until is None else moment(until, "until")
    if end > now:
        end = now
    if start >= end:
        raise ValueError("since: must be before until (and before now)")
    if now - start > BACKFILL_REACH:
        raise ValueError("since: at most ten years ago (each 30 days is a walk of Plivo's list)")
    return iso(start), iso(end)
