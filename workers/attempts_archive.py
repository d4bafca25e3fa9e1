"""Webhook attempts, moved from Redis to the archive beside their recordings.

A settled attempt is logged twice in Redis: in its subscription's window (the last `WINDOW`
attempts, for the dashboard) and in one list of attempts on their way to the archive. Every
`ARCHIVE_EVERY` seconds a worker (whichever takes the lock) moves a batch: each recording's
attempts are appended to its `attempts.json`, then dropped from Redis (an erased recording's
are dropped only: its archive prefix is gone, and stays gone). A move cut short (a
worker killed, the archive away) is taken up again once its lock lapses; an attempt the
archive already holds is not written twice. `GET /v1/recordings/{id}` shows the archive's
attempts and then those still on their way.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from typing import Any

from redis.exceptions import RedisError

from service.storage.archive import Archive, ArchiveUnavailable, recording_prefix
from service.storage.deliveries import ARCHIVE_EVERY, AttemptsLog
from service.storage.history import ATTEMPTS
from service.storage.recordings import RecordingStore

log = logging.getLogger("recording_relay.attempts")
BATCH = 500  # attempts one move takes at most


def _same(attempt: dict[str, Any]) -> tuple[object, ...]:
    return tuple(attempt.get(k) for k in ("at", "subscription_id", "type", "status_code"))


class AttemptsArchive:
    """Moves the attempt logs from Redis to the archive, a few seconds behind."""

    def __init__(
        self, attempts: AttemptsLog, archive: Archive, holder: str, store: RecordingStore
    ) -> None:
        self.attempts = attempts
        self.archive = archive
        self.holder = holder
        self.store = store  # an erased recording's attempts go nowhere

    async def run(self) -> None:
        """Move what has come, for ever (a task)."""
        while True:
            try:
                if await self.move() == BATCH:
                    continue  # more may be waiting
            except (RedisError, OSError, ArchiveUnavailable) as error:
                log.warning("attempts not moved to the archive yet (%s)", error)
            await asyncio.sleep(ARCHIVE_EVERY)

    async def move(self) -> int:
        """Move a batch of attempts to the archive, if there is one and no other worker is
        moving one; how many were moved."""
        if not await self.attempts.waiting():
            return 0
        batch = await self.attempts.take(self.holder, BATCH)
        if not batch:
            return 0
        by_recording: defaultdict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for attempt in batch:
            where = (str(attempt.pop("recording_id", "")), str(attempt.pop("day", "")))
            by_recording[where].append(attempt)
        erased = await self.store.erased([recording_id for recording_id, _ in by_recording])
        written: dict[str, str] = {}
        for (recording_id, day), attempts in by_recording.items():
            if recording_id and day and recording_id not in erased:
                key = written[recording_id] = f"{recording_prefix(recording_id, day)}/{ATTEMPTS}"
                await self._append(key, attempts)
        # An erasure that deleted the recording's prefix while this wrote to it: the tombstone
        # came first, so it is seen now, and what was written goes too.
        late = await self.store.erased(list(written))
        await self.archive.delete([written[recording_id] for recording_id in late])
        await self.attempts.done(len(batch))
        return len(batch)

    async def _append(self, key: str, attempts: list[dict[str, Any]]) -> None:
        kept: list[dict[str, Any]] = json.loads(await self.archive.get(key) or b"[]")
        known = {_same(a) for a in kept}
        kept += [a for a in attempts if _same(a) not in known]
        await self.archive.put(key, json.dumps(kept, separators=(",", ":")).encode())
