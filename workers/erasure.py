"""Erasure, carried out: the `run_erasure` job, and the daily retention sweep that starts one.

An erasure erases each of its recordings in the same steps, each safe to run again:

1. the tombstone (`service.storage.erasures`), unless the request wrote it already: the
   recording's queues and pending webhooks dropped, its pipeline stopped;
2. a wait, if a worker runs one of its pipeline jobs now (it stops at its next write), so that
   nothing is written to the archive after what is deleted;
3. the archive: every object of its prefix and every index entry naming it, in one bulk
   delete (three store requests a recording: its index record, a listing, the delete);
4. Plivo: its transcription and recording (rate-limited like every request; 404 is done);
5. `recording.erased` to every subscription that wants it, once (marked on the tombstone).

Its outcome (each step's) is kept in Redis until the erasure ends; then the audit record goes to
the archive (`service.storage.audit`). A recording under a legal hold is skipped by erasure by
person and by retention (`held`). A run stops after its time budget and goes on at once in the
next, like a backfill, so none outlasts `WORKER_JOB_TIMEOUT`; a worker killed mid-run leaves
every recording either done (its outcome kept) or to do again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from arq import Retry
from redis.asyncio import Redis

from service.domain.erasure import Erasure, Progress, Reason, new_id
from service.domain.events import ERASED, ErasedData, RecordingErased, now_iso
from service.plivo.client import PlivoClient, PlivoError
from service.settings import Settings
from service.storage import jobs
from service.storage.archive import (
    Archive,
    ArchiveUnavailable,
    date_of,
    day_prefix,
    recording_at,
    recording_prefix,
)
from service.storage.audit import AuditLog
from service.storage.deliveries import Deliveries
from service.storage.erasures import ErasureStore
from service.storage.holds import Holds
from service.storage.recordings import RecordingState, RecordingStore, Status, now_ms
from service.storage.subject_index import SubjectIndex
from workers.pipeline.context import Dispatch

log = logging.getLogger("recording_relay.erasure")
AT_ONCE = 8  # recordings one run erases side by side
RETENTION_EVERY = 86_400.0  # one retention sweep a day, for the whole deployment
WAIT_FOR_PIPELINE = 2.0  # seconds before looking again at a recording whose job runs


class Eraser:
    """Carries out erasures, and starts the retention sweep's."""

    def __init__(
        self,
        settings: Settings,
        erasures: ErasureStore,
        store: RecordingStore,
        archive: Archive,
        index: SubjectIndex,
        plivo: PlivoClient,
        deliveries: Deliveries,
        dispatch: Dispatch,
        redis: Redis,
    ) -> None:
        self.settings = settings
        self.erasures = erasures
        self.store = store
        self.archive = archive
        self.index = index
        self.holds = Holds(archive)
        self.audit = AuditLog(archive)
        self.plivo = plivo
        self.deliveries = deliveries
        self.dispatch = dispatch
        self.redis = redis

    async def run(self, erasure_id: str, budget: float) -> str:
        """One run of an erasure's job: what it came to (`Retry` to go on)."""
        erasure = await self.erasures.get(erasure_id)
        if erasure is None or erasure.status != Progress.RUNNING:
            return "nothing to do"
        try:
            if not await self.erasures.listed(erasure_id):
                await self.erasures.add_todo(erasure, await self.find(erasure))
            todo = await self.erasures.todo(erasure_id)
            done = await self.erasures.outcomes(erasure_id)
            held = await self.holds.held() if erasure.reason != Reason.REQUEST else set()
            left = [item for item in todo.items() if item[0] not in done]
            deadline = time.monotonic() + budget
            waiting = False
            for start in range(0, len(left), AT_ONCE):
                if time.monotonic() > deadline:
                    raise Retry(defer=0)  # a slice a run: the next goes on at once
                batch = left[start : start + AT_ONCE]
                ends = await asyncio.gather(
                    *(self.erase(erasure, rid, day, account, held) for rid, (day, account) in batch)
                )
                waiting = waiting or any(end is None for end in ends)
        except (ArchiveUnavailable, PlivoError) as error:
            if isinstance(error, PlivoError) and not error.transient:
                raise
            log.warning("erasure %s waits: %s", erasure_id, error)
            raise Retry(defer=10) from None
        if waiting:
            raise Retry(defer=WAIT_FOR_PIPELINE)
        return await self.end(erasure)

    async def find(self, erasure: Erasure) -> dict[str, str]:
        """The recordings an erasure by person or by retention erases: `day|account` each
        (the account is read from the index as each is erased)."""
        if erasure.reason == Reason.RETENTION:
            return await self.expired()
        if erasure.reason != Reason.SUBJECT or not erasure.subject:
            return {}  # (one recording's erasure is created with its recording)
        found = await self.index.find(erasure.subject)
        return {entry.recording_id: f"{entry.day}|" for entry in found}

    async def expired(self) -> dict[str, str]:
        """Every archived recording accepted before `ARCHIVE_RETENTION_DAYS` ago."""
        days = self.settings.archive_retention_days
        if days is None:
            return {}
        cutoff = datetime.now(UTC).date() - timedelta(days=days)
        found = {}
        for day in await self.archive.days():
            when = date_of(day)  # (a folder that is no day is never expired)
            if when is not None and when < cutoff:
                for key in await self.archive.keys(day_prefix(day)):
                    found[recording_at(key)[1]] = f"{day}|"
        return found

    async def erase(
        self, erasure: Erasure, recording_id: str, day: str, account: str, held: set[str]
    ) -> str | None:
        """Erase one recording (the steps of the module); its outcome, or None if one of its
        pipeline jobs runs now (it is looked at again shortly)."""
        if recording_id in held:
            return await self._outcome(erasure, recording_id, "held", {"hold": "kept"})
        state = await self.store.state(recording_id)
        if state is None or state.status != Status.ERASED:
            account = account or (state.auth_id if state else "")
            await self.erasures.tombstone(recording_id, erasure.id, erasure.reason, day, account)
            state = await self.store.state(recording_id)
        if await jobs.running(self.redis, recording_id):
            return None
        steps: dict[str, str] = {}
        record = await self.index.record(recording_id)
        day = (record.day if record else "") or (state.day if state else "") or day
        account = (
            (record.auth_id if record else "")
            or (state.auth_id if state else "")
            or account
            or self.settings.plivo_auth_id
        )
        objects = await self.archive.keys(recording_prefix(recording_id, day)) if day else []
        await self.archive.delete(objects + (record.keys() if record else []))
        steps["archive"] = f"{len(objects)} objects deleted"
        steps["plivo"] = await self._delete_at_plivo(account, recording_id)
        erased = ["relay", "archive"] + (["plivo"] if steps["plivo"] == "deleted" else [])
        steps["event"] = await self._announce(erasure, recording_id, state, erased)
        outcome = "erased" if steps["plivo"] == "deleted" else "failed"
        return await self._outcome(erasure, recording_id, outcome, steps)

    async def _delete_at_plivo(self, account: str, recording_id: str) -> str:
        """Plivo's transcription and recording deleted (`deleted`), or why not. A transient
        error propagates: the run is tried again."""
        try:
            await self.plivo.delete_everything(account, recording_id)
        except PlivoError as error:
            if error.transient:
                raise
            return f"failed: {error.message}"
        return "deleted"

    async def _announce(
        self, erasure: Erasure, recording_id: str, state: RecordingState | None, erased: list[str]
    ) -> str:
        """`recording.erased`, queued once for every subscription that wants it (`state`: its
        tombstone, as read when the erasure took it up)."""
        if state is not None and ERASED in state.emitted:
            return "sent before"
        data = ErasedData(
            recording_id=recording_id,
            erasure_id=(state.erasure_id if state else None) or erasure.id,
            reason=Reason((state.erasure_reason if state else None) or erasure.reason),
            erased_at=now_iso(),
            erased=erased,
        )
        event = RecordingErased(type=ERASED, timestamp=data.erased_at, data=data)
        body = await self.erasures.keep_event(recording_id, event.model_dump_json())
        fanned = await self.deliveries.fan_out(
            recording_id,
            ERASED,
            body,
            room=self.dispatch.room(),
            holder=self.dispatch.holder,
            emitted=True,
        )
        self.dispatch.submit(fanned.handed)
        return f"queued for {fanned.subscriptions} subscriptions"

    async def _outcome(
        self, erasure: Erasure, recording_id: str, outcome: str, steps: dict[str, str]
    ) -> str:
        record = {"recording_id": recording_id, "outcome": outcome, "at": now_ms(), **steps}
        await self.erasures.record_outcome(erasure.id, record)
        log.info("erasure %s: recording_id=%s %s", erasure.id, recording_id, outcome)
        return outcome

    async def end(self, erasure: Erasure) -> str:
        """Every recording is done: the counts, the audit record, the status."""
        outcomes = await self.erasures.results(erasure.id)
        erasure.counted(o["outcome"] for o in outcomes)
        erasure.status = Progress.FAILED if erasure.failed else Progress.DONE
        erasure.finished_at = now_ms()
        await self.audit.erasure(
            erasure.id, {"erasure": erasure.model_dump(mode="json"), "recordings": outcomes}
        )
        await self.erasures.save(erasure)
        counts = f"{erasure.erased} erased, {erasure.held} held, {erasure.failed} failed"
        return f"{erasure.status}: {counts}"

    async def sweep_retention(self) -> Erasure | None:
        """Start today's retention erasure, if retention is set and no worker started it
        within the day."""
        if self.settings.archive_retention_days is None:
            return None
        if not await self.erasures.take_retention_turn(RETENTION_EVERY):
            return None
        erasure = Erasure(
            id=new_id(), reason=Reason.RETENTION, requested_at=now_ms(), requested_by="retention"
        )
        await self.erasures.start(erasure)
        log.info("retention: erasure %s started", erasure.id)
        return erasure
