"""Backfills started and cancelled by an operator (the API's `POST /v1/backfills`, the
dashboard's form); a worker walks each when its turn comes (`workers.reconciliation`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from service.domain.problems import Invalid, NotFound
from service.storage.reconciliation import Backfill, BackfillStore


class BackfillRequest(BaseModel):
    """A backfill as asked for: its window (ISO 8601) and whether to transcribe what it finds."""

    model_config = ConfigDict(extra="forbid")

    since: str
    until: str | None = None
    transcribe: bool = True


class Backfills:
    """The line of backfills: `BACKFILL_CONCURRENCY` of them run at a time."""

    def __init__(self, store: BackfillStore, concurrency: int) -> None:
        self.store = store
        self.concurrency = concurrency

    async def start(self, asked: BackfillRequest) -> Backfill:
        """The backfill `asked` names, in the line (`Invalid` naming a bad bound)."""
        try:
            backfill, _ = await self.store.begin(asked.since, asked.until, asked.transcribe)
        except ValueError as error:
            field, _, message = str(error).partition(": ")
            raise Invalid(field, message) from None
        await self.store.wake(self.concurrency)
        return backfill

    async def end(self, backfill_id: str) -> Backfill:
        """Cancel a backfill (`NotFound` if unknown) and start the next in line."""
        backfill = await self.store.cancel(backfill_id)
        if backfill is None:
            raise NotFound(f"backfill {backfill_id[:80]!r} is unknown to the relay")
        await self.store.wake(self.concurrency)
        return backfill

    async def find(self, backfill_id: str) -> Backfill:
        """The backfill (`NotFound` if unknown)."""
        backfill = await self.store.get(backfill_id)
        if backfill is None:
            raise NotFound(f"backfill {backfill_id[:80]!r} is unknown to the relay")
        return backfill

    async def recent(self) -> list[Backfill]:
        """The latest backfills, newest first."""
        return await self.store.recent()
