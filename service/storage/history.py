"""A recording's history, wherever it is now: in Redis while the recording is in flight, in the
archive once it is final (`RecordingStore.finish`). The status endpoint, replay and recover read
through here, so they work the same before and after."""

from __future__ import annotations

import json
from typing import Any

from service.events import EVENT_TYPES
from service.storage.archive import Archive, day_of, recording_prefix

State = dict[str, str]


def prefix(recording_id: str, state: State) -> str:
    """The recording's prefix in the archive (the day the relay accepted it)."""
    return recording_prefix(recording_id, day_of(int(state["accepted_at"])))


class History:
    def __init__(self, archive: Archive) -> None:
        self.archive = archive

    async def events(self, recording_id: str, state: State) -> list[str]:
        """The bodies of the recording's events, in the order of a recording's life."""
        found = []
        for kind in EVENT_TYPES:
            body = await self.event(recording_id, state, kind)
            if body is not None:
                found.append(body)
        return found

    async def event(self, recording_id: str, state: State, kind: str) -> str | None:
        """The exact body of the recording's `kind` event, if it was emitted."""
        if f"event:{kind}" in state:
            return state[f"event:{kind}"]
        if "archived_at" not in state or f"emitted:{kind}" not in state:
            return None
        raw = await self.archive.get(f"{prefix(recording_id, state)}/events/{kind}.json")
        return None if raw is None else raw.decode()

    async def document(self, recording_id: str, state: State, name: str) -> Any:
        """`recording` or `callback`, from the state or, once final, the archive."""
        if name in state:
            return json.loads(state[name])
        if "archived_at" not in state:
            return None
        raw = await self.archive.get(f"{prefix(recording_id, state)}/{name}.json")
        return None if raw is None else json.loads(raw)
