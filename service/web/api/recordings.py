"""`GET /v1/recordings`: the recordings the relay knows, and where each is in the pipeline.

- `GET /v1/recordings?status=&since=&until=&cursor=&limit=`: newest first, from a small index in
  Redis (the recordings of the retention window), filtered by status and by when the relay
  accepted them (ISO 8601), paged.
- `GET /v1/recordings/{recording_id}`: its state, the time of each step, the Plivo requests it
  cost, the callbacks received besides the one that started it, its events (whole, as
  delivered), its webhook attempts and the last error; from Redis while it is in flight and
  from the archive after.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.operations.admin_auth import AdminAuth
from service.operations.paging import Page
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
)


STATUSES = tuple(Status)
SCAN_MAX = 1000  # index entries one page may look through to fill itself under a filter


class RecordingsAPI:
    def __init__(
        self, store: RecordingStore, history: History, deliveries: Deliveries, auth: AdminAuth
    ) -> None:
        self.store = store
        self.history = history
        self.deliveries = deliveries
        self.auth = auth

    async def list(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        page = Page.of(request)
        query = request.query_params
        status = query.get("status")
        if status is not None and status not in STATUSES:
            raise HTTPException(422, f"status: must be one of {', '.join(STATUSES)}")
        since = _moment(query.get("since"), "since", 0.0)
        until = _moment(query.get("until"), "until", float("inf"))
        found, cursor = await self.find(page, since, until, lambda s: status in (None, s.status))
        return JSONResponse({"data": [_summary(s) for s in found], "next_cursor": cursor})

    async def find(
        self,
        page: Page,
        since: float = 0.0,
        until: float = float("inf"),
        wanted: Callable[[RecordingState], bool] = lambda _: True,
    ) -> tuple[builtins.list[RecordingState], str | None]:
        """A page of the recordings accepted in [since, until] (epoch ms) that are `wanted`,
        newest first, looking through at most `SCAN_MAX` of them; and the next page's cursor."""
        found: builtins.list[RecordingState] = []
        offset, scanned, total = page.offset, 0, 0
        while len(found) < page.limit and scanned < SCAN_MAX:
            window = 100
            rows, total = await self.store.recent(since, until, offset, window)
            for index, state in enumerate(rows):
                if wanted(state):
                    found.append(state)
                    if len(found) == page.limit:
                        offset += index + 1
                        break
            else:
                offset += window
            scanned += window
            if offset >= total:
                break
        return found, str(offset) if offset < total else None

    async def get(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        recording_id = request.path_params["recording_id"]
        return JSONResponse(await self.detail(recording_id))

    async def detail(self, recording_id: str) -> dict[str, Any]:
        """Everything the relay knows of a recording; 404 as `HTTPException`."""
        found = await self.store.state(recording_id)
        if found is None:
            raise HTTPException(404, f"recording {recording_id[:80]!r} is unknown to the relay")
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
            "attempts": attempts,
        }


def _summary(state: RecordingState) -> dict[str, Any]:
    return {
        "recording_id": state.recording_id,
        "status": state.status,
        "accepted_at": state.accepted_at,
        "updated_at": state.updated_at or state.archived_at,
        "archived": state.archived,
        "last_error": state.last_error,
    }


def _moment(value: str | None, name: str, default: float) -> float:
    """An ISO 8601 query parameter as epoch ms; 422 naming it if it is not one."""
    if value is None:
        return default
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(422, f"{name}: not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000
