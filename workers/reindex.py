"""`python -m workers reindex`: the archive's index of who each recording is of
(`service.storage.subject_index`), written for every recording archived before the relay kept
one (or under an index key since lost with Redis).

It walks the archive's days in order and, for each final recording (one with `state.json`),
reads its callback and Plivo's Recording object (`callback.json`, `recording.json`; for a
recording that failed before those, its `recording.failed` event) and writes its index entries.
Writing an entry again writes the same object, so a run cut short is simply run again: the
last recording done is kept in Redis (`keys.REINDEX`) and the next run starts after it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from service.domain.erasure import phone_numbers
from service.domain.events import FAILED
from service.storage import keys
from service.storage.archive import Archive, day_prefix, recording_at
from service.storage.history import STATE
from service.storage.subject_index import SubjectIndex

PROGRESS_DAYS = 35  # how long Redis keeps how far a run got


class Reindexer:
    """Walks the archive and indexes each recording."""

    def __init__(self, archive: Archive, redis: Redis, index: SubjectIndex) -> None:
        self.archive = archive
        self.redis = redis
        self.index = index

    async def run(self, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Index the archive from where a run before stopped; how many recordings were seen
        and indexed."""
        done = (await self.redis.get(keys.REINDEX) or b"").decode()
        seen = indexed = 0
        for day in await self.archive.days():
            partition = day_prefix(day)
            if done and partition < done.rsplit("/", 1)[0]:
                continue
            for at in await self._recordings(partition):
                if at <= done:
                    continue
                seen += 1
                if await self.reindex(at):
                    indexed += 1
                await self.redis.set(keys.REINDEX, at, ex=PROGRESS_DAYS * 86_400)
                if progress is not None:
                    progress(seen, indexed)
        await self.redis.delete(keys.REINDEX)  # whole: the next run starts from the beginning
        return seen, indexed

    async def _recordings(self, day: str) -> list[str]:
        """The prefixes of a day's final recordings (those with `state.json`), in order."""
        return sorted(
            key.rsplit("/", 1)[0]
            for key in await self.archive.keys(day)
            if key.endswith(f"/{STATE}")
        )

    async def reindex(self, at: str) -> bool:
        """Index one recording (`at`: its prefix); False if nothing says who it is of."""
        day, recording_id = recording_at(at)
        callback = await self._document(f"{at}/callback.json")
        recording = await self._document(f"{at}/recording.json")
        if callback is None:
            failed = await self._document(f"{at}/events/{FAILED}.json")
            if failed is not None:
                callback = {"params": failed["data"].get("callback") or {}}
        state = await self._document(f"{at}/{STATE}") or {}
        params = (callback or {}).get("params") or {}
        call_uuid = (recording or {}).get("call_uuid") or (callback or {}).get("call_uuid")
        call_uuid = call_uuid or state.get("call_uuid")
        numbers = phone_numbers(params, recording)
        await self.index.write(
            recording_id,
            day,
            str(state.get("auth_id") or (callback or {}).get("auth_id") or ""),
            numbers,
            call_uuid,
        )
        return bool(numbers or call_uuid)

    async def _document(self, key: str) -> dict[str, Any] | None:
        raw = await self.archive.get(key)
        return None if raw is None else dict(json.loads(raw))
