"""`GET /v1/recordings/{recording_id}`: where a recording is in the pipeline.

Its state, the time of each step, the Plivo requests it cost, the callbacks received besides
the one that started it, its events (whole, as delivered) and the last error.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.admin_auth import AdminAuth
from service.callbacks import is_recording_id
from service.history import History
from service.store import RecordingStore

STEPS = (
    "accepted_at",
    "details_at",
    "transcription_requested_at",
    "transcribed_at",
    "failed_at",
    "archived_at",
    "deleted_at",
)


class RecordingsAPI:
    def __init__(self, store: RecordingStore, history: History, auth: AdminAuth) -> None:
        self.store = store
        self.history = history
        self.auth = auth

    async def get(self, request: Request) -> JSONResponse:
        self.auth.check(request)
        recording_id = request.path_params["recording_id"]
        state = await self.store.state(recording_id) if is_recording_id(recording_id) else None
        if state is None:
            raise HTTPException(404, f"recording {recording_id[:80]!r} is unknown to the relay")
        return JSONResponse(
            {
                "recording_id": recording_id,
                "status": state.get("status"),
                "steps": {step: _ms(state.get(step)) for step in STEPS},
                "plivo_requests": int(state.get("plivo_requests", 0)),
                "last_error": state.get("last_error"),
                "archived": "archived_at" in state,
                "callback": await self.history.document(recording_id, state, "callback"),
                "other_callbacks": [
                    json.loads(c) for c in await self.store.callbacks(recording_id)
                ],
                "events": [json.loads(e) for e in await self.history.events(recording_id, state)],
                "attempts": [json.loads(a) for a in await self.store.attempts(recording_id)],
            }
        )


def _ms(value: str | None) -> int | None:
    return None if value is None else int(float(value))
