"""Finding and describing recordings: what `GET /v1/recordings` and the dashboard's recording
pages show, from a small index in Redis while a recording is in its retention window and from
the archive after."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from service.domain.problems import NotFound
from service.storage.deliveries import Deliveries
from service.storage.history import History, prefix
from service.storage.recordings import RecordingState, RecordingStore, Status

STEPS = (
    "accepted_at",
    "details_at",
    "transcription_requested_at",
    "audio_archived_at",
    "transcribed_at",
    "failed_at",
    "archived_at",
    "deleted_at",
    "erased_at",
)
STATUSES = tuple(Status)
SCAN_MAX = 1000  # index entries one page may look through to fill itself under a filter


class Recordings:
    """The recordings the relay knows: a filtered page of them, or all about one."""

    def __init__(self, store: RecordingStore, history: History, deliveries: Deliveries) -> None:
        self.store = store
        self.history = history
        self.deliveries = deliveries

    async def find(
        self,
        offset: int,
        limit: int,
        since: float = 0.0,
        until: float = float("inf"),
        wanted: Callable[[RecordingState], bool] = lambda _: True,
    ) -> tuple[list[RecordingState], str | None]:
        """Up to `limit` of the recordings accepted in [since, until] (epoch ms) that are
        `wanted`, newest first from `offset`, looking through at most `SCAN_MAX` of them; and
        the next page's cursor."""
        found: list[RecordingState] = []
        scanned, total = 0, 0
        while len(found) < limit and scanned < SCAN_MAX:
            window = 100
            rows, total = await self.store.recent(since, until, offset, window)
            for index, state in enumerate(rows):
                if wanted(state):
                    found.append(state)
                    if len(found) == limit:
                        offset += index + 1
                        break
            else:
                offset += window
            scanned += window
            if offset >= total:
                break
        return found, str(offset) if offset < total else None

    async def recent_events(self, count: int = 50) -> list[dict[str, Any]]:
        """The latest `count` events about recordings, the newest recording's first (to try a
        subscription's filter on)."""
        found: list[dict[str, Any]] = []
        offset, window = 0, 20
        while len(found) < count:
            rows, total = await self.store.recent(0.0, float("inf"), offset, window)
            for state in rows:
                whole = await self.history.full(state)
                found += [json.loads(body) for body in reversed(await self.history.events(whole))]
            offset += window
            if offset >= total:
                break
        return found[:count]

    async def detail(self, recording_id: str) -> dict[str, Any]:
        """Everything the relay knows of a recording (`NotFound` if nothing)."""
        found = await self.store.state(recording_id)
        if found is None:
            raise NotFound(f"recording {recording_id[:80]!r} is unknown to the relay")
        state = await self.history.full(found)
        callback = await self.history.callback(state)
        attempts = await self.history.attempts(state) if state.archived else []
        attempts += await self.deliveries.recording_attempts(recording_id)
        return {
            "recording_id": recording_id,
            "status": state.status,
            # How the relay learned of it: Plivo's callback, a sweep or a backfill.
            "source": (callback or {}).get("origin", "callback"),
            "steps": {step: getattr(state, step) for step in STEPS},
            "plivo_requests": state.plivo_requests,
            "last_error": state.last_error,
            "archived": state.archived,
            "audio": [
                {"key": f"{prefix(state)}/{c.name}", "size": c.size, "sha256": c.sha256}
                for c in state.audio
            ]
            or None,
            "callback": callback,
            "other_callbacks": [json.loads(c) for c in await self.store.callbacks(recording_id)],
            "events": [json.loads(e) for e in await self.history.events(state)],
            "attempts": [attempt.model_dump() for attempt in attempts],
            "erasure": (
                {"id": state.erasure_id, "reason": state.erasure_reason}
                if state.status == Status.ERASED
                else None
            ),
        }


def summary(state: RecordingState) -> dict[str, Any]:
    """A recording as a list shows it."""
    return {
        "recording_id": state.recording_id,
        "status": state.status,
        "accepted_at": state.accepted_at,
        "updated_at": state.updated_at or state.archived_at,
        "archived": state.archived,
        "last_error": state.last_error,
    }
