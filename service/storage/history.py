"""A recording's history, wherever it is now: in Redis while the recording is in flight, in the
archive once it is final (`RecordingStore.finish`). The status endpoint, replay, recover, the
media links and Plivo's deletion read through here, so they work the same before and after."""

from __future__ import annotations

import json
from typing import Any

from service.domain.attempts import Attempt
from service.domain.events import ERASED, EVENT_TYPES
from service.storage.archive import Archive, day_of, recording_prefix
from service.storage.deliveries import decode_attempt
from service.storage.recordings import RecordingState


def prefix(state: RecordingState) -> str:
    """The recording's prefix in the archive (the day the relay accepted it)."""
    return recording_prefix(state.recording_id, day_of(state.accepted_at or 0))


STATE = "state.json"  # a final recording's state, as `RecordingState.document` writes it
ATTEMPTS = "attempts.json"  # its webhook attempts (`workers.attempts_archive`)


class History:
    """A recording's past as the archive keeps it: its state, events and attempts."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive

    async def full(self, state: RecordingState) -> RecordingState:
        """The whole state of a recording: `state` itself while it is in flight; once it is
        final, the archive's `state.json` with what Redis has learned since (a deletion from
        Plivo, its requests and error)."""
        if not state.trimmed:
            return state
        raw = await self.archive.get(f"{prefix(state)}/{STATE}")
        if raw is None:
            return state  # the archive lost it: what Redis has is all there is
        whole = RecordingState.from_document(json.loads(raw))
        whole.status = state.status
        whole.last_error = state.last_error or whole.last_error
        whole.deleted_at = state.deleted_at
        whole.updated_at = state.updated_at or whole.updated_at
        whole.plivo_requests += state.plivo_requests  # those made after it was final
        return whole

    async def attempts(self, state: RecordingState) -> list[Attempt]:
        """The webhook attempts the archive holds of the recording, oldest first (Redis holds
        the latest few seconds': `Deliveries.recording_attempts`)."""
        raw = await self.archive.get(f"{prefix(state)}/{ATTEMPTS}")
        records = json.loads(raw) if raw is not None else []
        return [decode_attempt(r, recording_id=state.recording_id) for r in records]

    async def events(self, state: RecordingState) -> list[str]:
        """The bodies of the recording's events, in the order of a recording's life (an erased
        recording's: its `recording.erased` only)."""
        if ERASED in state.events:
            return [state.events[ERASED]]
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
            return state.callback.model_dump(mode="json")
        if not state.archived:
            return None
        raw = await self.archive.get(f"{prefix(state)}/callback.json")
        return None if raw is None else json.loads(raw)
