"""`python -m workers retranscribe --since 2026-10-01 [--until 2026-11-01]`: the transcripts
the archive already holds, brought up to today's relay without asking Plivo for anything.

For each transcribed recording of those days (UTC, by the day the relay accepted it): Plivo's
three documents redacted as `REDACT` says today, `transcript.json`, `.txt` and `.vtt` built
again, the archived `recording.transcribed` event given the redacted documents and its
`data.transcript`, and the archived `recording.archived` event's sizes and digests made true
again. Writing the same again changes nothing, so a run cut short is simply run again: the
last recording done is kept in Redis (`keys.retranscribe`) and the next run of the same window
starts after it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from redis.asyncio import Redis

from service.domain import events
from service.domain.redaction import Redactor, redact_documents
from service.domain.transcript import build, files
from service.storage import keys
from service.storage.archive import Archive, day_named, day_prefix, recording_at, recording_prefix

DOCUMENTS = ("transcription", "raw", "diarized")
PROGRESS_DAYS = 35  # how long Redis keeps a window's progress


@dataclass
class Counts:
    """What a run did: recordings looked at, rewritten, and the items redacted in them."""

    seen: int = 0
    rewritten: int = 0
    redacted: int = 0


def days(since: date, until: date) -> list[date]:
    """Every day from `since` to `until`, both included."""
    return [since + timedelta(days=n) for n in range((until - since).days + 1)]


class Retranscriber:
    """Walks the archive's days and rewrites each transcribed recording's transcript."""

    def __init__(self, archive: Archive, redis: Redis, redactor: Redactor) -> None:
        self.archive = archive
        self.redis = redis
        self.redactor = redactor

    async def run(
        self, since: date, until: date, progress: Callable[[Counts], None] | None = None
    ) -> Counts:
        """Retranscribe the window, from where a run of it before stopped."""
        window = f"{since.isoformat()}:{until.isoformat()}"
        done = (await self.redis.get(keys.retranscribe(window)) or b"").decode()
        counts = Counts()
        for day in days(since, until):
            partition = day_prefix(day_named(day))
            for at in await self._recordings(partition):
                if at <= done:
                    continue
                counts.seen += 1
                redacted = await self.rewrite(at)
                if redacted is not None:
                    counts.rewritten += 1
                    counts.redacted += redacted
                await self.redis.set(keys.retranscribe(window), at, ex=PROGRESS_DAYS * 86_400)
                if progress is not None:
                    progress(counts)
        return counts

    async def _recordings(self, partition: str) -> list[str]:
        """The prefixes of the recordings the archive holds for a day, in order."""
        listed = await self.archive.keys(partition)
        return sorted({recording_prefix(rid, day) for day, rid in map(recording_at, listed)})

    async def rewrite(self, at: str) -> int | None:
        """Rewrite one recording's transcript (`at`: its prefix); how many items were redacted,
        None if it has no transcript."""
        documents: dict[str, dict[str, Any]] = {}
        for name in DOCUMENTS:
            raw = await self.archive.get(f"{at}/{name}.json")
            if raw is None:
                return None
            documents[name] = json.loads(raw)
        counts = redact_documents(self.redactor, documents.values())
        readable = build(
            documents["transcription"].get("transcription"),
            documents["raw"].get("transcription"),
            documents["diarized"].get("transcription"),
            counts,
        )
        written = {f"{name}.json": json.dumps(doc).encode() for name, doc in documents.items()}
        written.update(files(readable))
        event_key = f"events/{events.TRANSCRIBED}.json"
        kept = await self.archive.get(f"{at}/{event_key}")
        if kept is not None:
            event = json.loads(kept)
            transcription = event["data"].get("transcription") or {}
            for name in DOCUMENTS:
                if name in transcription:
                    transcription[name] = documents[name]
            event["data"]["transcript"] = readable.model_dump(mode="json")
            media = event["data"].pop("media", None)  # the last field, as every event has it
            event["data"]["media"] = media
            written[event_key] = json.dumps(event, separators=(",", ":")).encode()
        for name, data in written.items():
            await self.archive.put(f"{at}/{name}", data)
        await self._true_inventory(at, written)
        return sum(counts.values())

    async def _true_inventory(self, at: str, written: dict[str, bytes]) -> None:
        """The archived `recording.archived` event, its objects' sizes and digests as they are
        now (and the transcript's forms listed)."""
        key = f"{at}/events/{events.ARCHIVED}.json"
        kept = await self.archive.get(key)
        if kept is None:
            return
        event = json.loads(kept)
        objects = event["data"]["archive"]["objects"]
        listed = {item["key"]: item for item in objects}
        for name, data in written.items():
            item = {
                "key": f"{at}/{name}",
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            if item["key"] in listed:
                listed[item["key"]].update(item)
            else:
                objects.append(item)
        objects.sort(key=lambda item: item["key"])
        await self.archive.put(key, json.dumps(event, separators=(",", ":")).encode())
