"""Erasure and legal holds, as the management API and the dashboard ask for them.

`erase` writes the recording's tombstone and queues its erasure in one step, so the recording's
pipeline and webhooks stop before the answer; the rest (`workers.erasure`) follows. A held
recording's erasure is refused (`Conflict` naming the hold); a recording erased before answers
the erasure that erased it. Each erasure, hold and release is audited in the archive.
"""

from __future__ import annotations

from typing import Any

from service.domain.callbacks import is_recording_id
from service.domain.erasure import (
    Erasure,
    Hold,
    Reason,
    SubjectRequest,
    is_erasure_id,
    new_id,
)
from service.domain.problems import Conflict, NotFound
from service.storage.archive import day_of
from service.storage.audit import AuditLog
from service.storage.erasures import ErasureStore
from service.storage.holds import Holds
from service.storage.recordings import RecordingStore, Status, now_ms
from service.storage.subject_index import SubjectIndex


class Erasures:
    """Erasures and holds, as an operator asks for them (`by`: who asks, as the audit says)."""

    def __init__(
        self,
        erasures: ErasureStore,
        store: RecordingStore,
        index: SubjectIndex,
        holds: Holds,
        audit: AuditLog,
    ) -> None:
        self.erasures = erasures
        self.store = store
        self.index = index
        self.holds = holds
        self.audit = audit

    async def _where(self, recording_id: str) -> tuple[str, str, Status | None]:
        """The recording's archive day, account and status (`NotFound` if the relay has no
        trace of it: not in Redis, not in the archive's index)."""
        if not is_recording_id(recording_id):
            raise NotFound(f"recording {recording_id[:80]!r} is unknown to the relay")
        state = await self.store.state(recording_id)
        if state is not None:
            day = state.day or day_of(state.accepted_at or 0)
            return day, state.auth_id, state.status
        record = await self.index.record(recording_id)
        if record is None:
            raise NotFound(f"recording {recording_id!r} is unknown to the relay")
        return record.day, record.auth_id, None

    async def erase(self, recording_id: str, by: str) -> str:
        """Erase one recording: the erasure's id (`Conflict` if it is held)."""
        day, account, status = await self._where(recording_id)
        if status != Status.ERASED:
            hold = await self.holds.get(recording_id)
            if hold is not None:
                raise Conflict(
                    f"recording {recording_id} is under a legal hold ({hold.reason}), placed "
                    f"by {hold.placed_by}: release it (DELETE /v1/recordings/{recording_id}"
                    "/hold) to erase it"
                )
        erasure = Erasure(
            id=new_id(), reason=Reason.REQUEST, requested_at=now_ms(), requested_by=by, found=1
        )
        erasure_id, _ = await self.erasures.tombstone(
            recording_id, erasure.id, erasure.reason, day, account, create=erasure
        )
        return erasure_id

    async def erase_subject(self, subject: SubjectRequest, by: str) -> Erasure:
        """Erase every recording of a phone number or a call the relay archived."""
        if subject.phone_number is not None:
            folder = await self.index.number_folder(subject.phone_number)
        else:
            folder = await self.index.call_folder(subject.call_uuid or "")
        erasure = Erasure(
            id=new_id(),
            reason=Reason.SUBJECT,
            requested_at=now_ms(),
            requested_by=by,
            subject=folder,
        )
        await self.erasures.start(erasure)
        return erasure

    async def get(self, erasure_id: str) -> dict[str, Any]:
        """An erasure's progress and, once it has ended, its audit record's outcomes."""
        if not is_erasure_id(erasure_id):
            raise NotFound(f"no erasure {erasure_id[:80]!r}")
        erasure = await self.erasures.get(erasure_id)
        record = await self.audit.erasure_record(erasure_id)
        if erasure is None and record is None:
            raise NotFound(f"no erasure {erasure_id!r}")
        if erasure is None:
            assert record is not None
            erasure = Erasure.model_validate(record["erasure"])
        if record is not None:
            recordings = record["recordings"]
        else:
            recordings = await self.erasures.results(erasure_id)
        return {**erasure.model_dump(mode="json"), "recordings": recordings}

    async def recent(self) -> list[Erasure]:
        return await self.erasures.recent()

    async def hold(self, recording_id: str, reason: str, by: str) -> Hold:
        """Place a legal hold (placing it again replaces its reason)."""
        _, _, status = await self._where(recording_id)
        if status == Status.ERASED:
            raise Conflict(f"recording {recording_id} is erased: there is nothing left to hold")
        hold = Hold(recording_id=recording_id, reason=reason, placed_at=now_ms(), placed_by=by)
        await self.holds.place(hold)
        await self.audit.hold(recording_id, hold.placed_at, "placed", hold.model_dump())
        return hold

    async def release(self, recording_id: str, by: str) -> None:
        """Release a legal hold (`NotFound` if there is none)."""
        hold = await self.holds.get(recording_id) if is_recording_id(recording_id) else None
        if hold is None:
            raise NotFound(f"recording {recording_id[:80]!r} is under no legal hold")
        await self.holds.release(recording_id)
        at = now_ms()
        record = {
            "recording_id": recording_id,
            "released_at": at,
            "released_by": by,
            "hold": hold.model_dump(),
        }
        await self.audit.hold(recording_id, at, "released", record)

    async def held(self, recording_id: str) -> Hold | None:
        return await self.holds.get(recording_id)

    async def all_holds(self) -> list[Hold]:
        return await self.holds.all()
