"""Taking up the recordings Plivo's callbacks did not bring: the sweep and the backfill.

Plivo tries a callback once more at most; a relay that was down, unreachable or misconfigured
for longer never hears of those recordings. Both of these ask Plivo's List Recordings API
instead (`add_time` windows of at most 30 days, pages of 20, newest first) and put every
recording the relay has never seen through the same pipeline a callback does: the same claim
(`RecordingStore.accept`), so whichever comes first, callback, sweep or backfill, a recording is
processed once. Their listing requests take at most `RECONCILE_RATE_SHARE` of the account's
rate limit (`RateLimiter.share`); the recordings they queue then share it with live ones.

- The sweep, every `RECONCILE_INTERVAL` seconds in one worker at a time, lists each account
  (the main one and `PLIVO_SUBACCOUNTS`) from its watermark (less `OVERLAP`, for late arrivals)
  up to `GRACE` ago (a recording's own callback is let come first), and then moves the
  watermark there. A sweep cut short (a crash, a Plivo outage) leaves it where it was: the next
  one repeats the work, never skips it.
- A backfill walks a window an operator names (`python -m workers backfill`, or
  `POST /v1/backfills`), saving how far it got after every page, so running it again resumes,
  and stopping at the first page after it was cancelled. Backfills asked for through the API
  take turns, `BACKFILL_CONCURRENCY` at a time (`BackfillStore`'s line). A backfill queues a
  few recordings at a time, only while few jobs are due (`CHUNK`, `QUEUE_MAX`), so the
  workers' time goes to live recordings first.

Pages are walked by time, not offset: after each page the upper bound moves to the oldest
`add_time` in it (inclusive, skipping the ids already handled at that instant), so recordings
added or deleted meanwhile shift nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from service.domain.callbacks import InvalidCallback, Origin, from_listed
from service.logs import about
from service.metrics import Recorder
from service.plivo.client import PlivoClient
from service.settings import Settings
from service.storage import jobs
from service.storage.reconciliation import Backfill, BackfillStatus, BackfillStore, SweepState
from service.storage.recordings import Outcome, RecordingStore

log = logging.getLogger("recording_relay.reconciliation")
PAGE = 20  # Plivo's largest page
SLICE = timedelta(days=30)  # Plivo's largest add_time window
OVERLAP = timedelta(minutes=2)
GRACE = timedelta(minutes=1)  # or half an interval, if that is shorter
# A backfill queues recordings CHUNK at a time, each chunk once at most QUEUE_MAX jobs are due
# (it looks twice a second): at most 10 a second, and only as fast as the workers keep up.
QUEUE_MAX = 5
CHUNK = 5
CHUNK_WAIT = 30.0  # seconds a chunk waits for the queue at most (the page's first, the job's time)
PLIVO_TIME = "%Y-%m-%d %H:%M:%S.%f"


class ListingOrder(Exception):
    """Plivo's list came in an order the walk cannot follow (it expects newest first)."""


@dataclass
class Counts:
    """What a sweep or backfill found: how many, how many already known, how many queued."""

    found: int = 0
    known: int = 0
    queued: int = 0

    def add(self, other: Counts) -> None:
        self.found += other.found
        self.known += other.known
        self.queued += other.queued


def slices(since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
    """[since, until) in windows Plivo accepts, oldest first."""
    found = []
    while since < until:
        found.append((since, min(until, since + SLICE)))
        since += SLICE
    return found


def added(recording: dict[str, Any]) -> datetime:
    """A listed recording's `add_time`, in UTC (Plivo writes `2026-11-25 10:00:00.123456+00:00`)."""
    moment = datetime.fromisoformat(str(recording.get("add_time")))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Reconciler:
    """Sweeps and backfills: Plivo's List Recordings compared with what the relay saw."""

    def __init__(
        self,
        settings: Settings,
        store: RecordingStore,
        plivo: PlivoClient,
        sweeps: SweepState,
        backfills: BackfillStore,
        metrics: Recorder,
    ) -> None:
        self.metrics = metrics
        self.settings = settings
        self.store = store
        self.plivo = plivo  # its limiter is a share of the account's
        self.sweeps = sweeps
        self.backfills = backfills
        self.accounts = [settings.plivo_auth_id, *settings.plivo_subaccounts]

    # -- walking Plivo's list --------------------------------------------------------------

    async def pages(
        self, auth_id: str, since: datetime, until: datetime, upper: datetime | None = None
    ) -> AsyncIterator[tuple[list[dict[str, Any]], datetime]]:
        """The recordings added in [since, until), a page at a time, newest first, each with
        the upper bound a walk resumed after it starts from (`upper`: where to start)."""
        bound = {"add_time__lte": upper} if upper is not None else {"add_time__lt": until}
        handled_at_bound: set[str] = set()
        while True:
            filters = {name: moment.strftime(PLIVO_TIME) for name, moment in bound.items()}
            filters["add_time__gte"] = since.strftime(PLIVO_TIME)
            page, more = await self.plivo.recordings_page(auth_id, 0, PAGE, **filters)
            fresh = [r for r in page if str(r.get("recording_id")) not in handled_at_bound]
            if not fresh:
                return
            if added(fresh[0]) < added(fresh[-1]):
                # The walk moves its upper bound down: oldest first, it would skip recordings.
                raise ListingOrder("Plivo listed recordings oldest first: nothing was skipped")
            oldest = min(added(r) for r in fresh)
            yield fresh, oldest
            if not more:
                return
            at_oldest = {str(r.get("recording_id")) for r in fresh if added(r) == oldest}
            if bound.get("add_time__lte") == oldest:
                handled_at_bound |= at_oldest
            else:
                handled_at_bound = at_oldest
            bound = {"add_time__lte": oldest}

    async def take_up(
        self, auth_id: str, page: list[dict[str, Any]], origin: Origin, transcribe: bool
    ) -> Counts:
        """Put the recordings of `page` the relay has not seen through the pipeline."""
        callbacks = []
        for recording in page:
            try:
                callbacks.append(from_listed(recording, auth_id, origin, transcribe, time.time()))
            except InvalidCallback as error:
                log.warning("%s: skipped: %s", origin, error)
        outcomes = await asyncio.gather(*(self.store.accept(c) for c in callbacks))
        if Outcome.FAILED in outcomes:
            raise RuntimeError("Redis refused to take up a listed recording (logged)")
        queued = outcomes.count(Outcome.QUEUED)
        for callback, outcome in zip(callbacks, outcomes, strict=True):
            if outcome is Outcome.QUEUED:
                self.metrics.count("relay_recordings_accepted_total", source=origin.value)
                log.info(
                    "%s: recording_id=%s taken up",
                    origin,
                    callback.recording_id,
                    extra=about(recording_id=callback.recording_id),
                )
        return Counts(found=len(page), known=len(page) - queued, queued=queued)

    # -- the sweep -------------------------------------------------------------------------

    async def sweep(self) -> Counts | None:
        """One sweep of every account, if it is this worker's turn (None if not)."""
        if not await self.sweeps.take_turn(self.settings.reconcile_interval):
            return None
        interval = self.settings.reconcile_interval
        until = datetime.now(UTC) - min(GRACE, timedelta(seconds=interval / 2))
        earliest = until - timedelta(days=self.settings.recording_retention_days)
        counts = Counts()
        for auth_id in self.accounts:
            mark = await self.sweeps.watermark(auth_id, until)
            if mark is None:
                continue  # the first sweep: from now on
            since = max(mark - OVERLAP, earliest)
            for lower, upper in slices(since, until):
                async for page, _ in self.pages(auth_id, lower, upper):
                    counts.add(await self.take_up(auth_id, page, Origin.RECONCILIATION, True))
            await self.sweeps.advance(auth_id, max(mark, until))
        if counts.queued:
            log.warning(
                "reconciliation: %d recordings had not reached the relay; taken up",
                counts.queued,
            )
        return counts

    # -- the backfill ----------------------------------------------------------------------

    async def backfill(
        self,
        backfill: Backfill,
        progress: Callable[[Backfill], None] = lambda _: None,
        budget: float = float("inf"),
    ) -> Backfill:
        """Walk `backfill`'s window from where it got to, for at most `budget` seconds (it
        stays `running` when the budget ends first: call again to go on). A backfill that was
        cancelled (by the API, meanwhile) is left as it is, after the page at hand."""
        deadline = time.monotonic() + budget
        since = datetime.fromisoformat(backfill.since)
        until = datetime.fromisoformat(backfill.until)
        units = [(a, lo, hi) for lo, hi in slices(since, until) for a in self.accounts]
        backfill.status = BackfillStatus.RUNNING
        if not await self.backfills.save(backfill):
            return backfill
        while backfill.slice < len(units):
            auth_id, lower, upper = units[backfill.slice]
            resume = datetime.fromisoformat(backfill.cursor) if backfill.cursor else None
            async for page, oldest in self.pages(auth_id, lower, upper, resume):
                if not await self._wait_for_the_queue(deadline):
                    return backfill  # the page is walked again next time
                for start in range(0, len(page), CHUNK):
                    if start:  # the page is taken up whole: a later chunk waits a while only
                        await self._wait_for_the_queue(time.monotonic() + CHUNK_WAIT)
                    chunk = page[start : start + CHUNK]
                    counts = await self.take_up(
                        auth_id, chunk, Origin.BACKFILL, backfill.transcribe
                    )
                    backfill.found += counts.found
                    backfill.known += counts.known
                    backfill.queued += counts.queued
                backfill.cursor = oldest.isoformat()
                if not await self.backfills.save(backfill):
                    progress(backfill)
                    return backfill
                progress(backfill)
                if time.monotonic() > deadline:
                    return backfill
            backfill.slice += 1
            backfill.cursor = ""
            if not await self.backfills.save(backfill):
                return backfill
        backfill.status = BackfillStatus.DONE
        await self.backfills.save(backfill)
        progress(backfill)
        log.info("backfill %s done: %s", backfill.id, backfill.summary())
        return backfill

    async def take_turns(self) -> int:
        """Queue the jobs of the backfills whose turn it is (`BACKFILL_CONCURRENCY`)."""
        return await self.backfills.wake(self.settings.backfill_concurrency)

    async def _wait_for_the_queue(self, deadline: float) -> bool:
        """Wait while more than `QUEUE_MAX` jobs are due; False if the deadline came first."""
        redis = self.store.redis
        said = time.monotonic() + 10
        # Redis's queue, not this process, drains it: there is no event to wait on.
        while (due := await redis.zcount(jobs.QUEUE, "-inf", time.time() * 1000)) > QUEUE_MAX:
            if time.monotonic() > deadline:
                return False
            if time.monotonic() > said:  # once: are the workers running?
                log.warning("backfill: waiting for the workers: %d jobs due", due)
                said = float("inf")
            await asyncio.sleep(0.5)
        return True
