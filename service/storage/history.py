"""A recording's history, wherever it is now: in Redis while the recording is in flight, in the
archive once it is final (`RecordingStore.finish`). The status endpoint, replay and recover read
through here, so they work the same before and after."""

from __future__ import annotations

import json
from typing import Any

from service.events import EVENT_TYPES
from service.storage.archive import Archive, day_of, recording_prefix
from service.storage.recordings import RecordingState


def prefix(state: RecordingState) -> str:
    """The recording's prefix in the archive (the day the relay accepted it)."""
    return recording_prefix(state.recording_id, day_of(state.accepted_at or 0))


class History:
    def __init__(self, archive: Archive) -> None:
        self.archive = archive

    async def events(self, state: RecordingState) -> list[str]:
        """The bodies of the recording's events, in the order of a recording's life."""
        found = []
        for kind in EVENT_TYPES:
            body = await self.event(state, kind)
            if body is not None:
                found.append(body)
        return found

    async def event(self, state: RecordingState, kind: str) -> str | None:
        """The exact body of the recording's `kind` event, if it was emitted."""
        if kind in state.events:
            return state.events[kind]
        if not state.archived or kind not in state.emitted:
            return None
        raw = await self.archive.get(f"{prefix(state)}/events/{kind}.json")
        return None if raw is None else raw.decode()

    async def callback(self, state: RecordingState) -> Any:
        """The recording callback that started it, from the state or, once final, the
        archive."""
        if state.callback is not None:
            return json.loads(state.callback)
        if not state.archived:
            return None
        raw = await self.archive.get(f"{prefix(state)}/callback.json")
        return None if raw is None else json.loads(raw)
