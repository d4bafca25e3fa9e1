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

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.domain.attempts import Attempt
from service.domain.events import Event, RecordingErased
from service.domain.problems import Invalid
from service.operations.admin_auth import AdminAuth
from service.operations.paging import Page
from service.operations.recordings import STATUSES, Recordings, summary
from service.web.api.operation import ERROR, PAGE, documented

FILTERS = (
    *PAGE,
    {
        "name": "status",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": list(STATUSES)},
    },
    *(
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {"type": "string", "format": "date-time"},
        }
        for name in ("since", "until")
    ),
)


class RecordingSummary(BaseModel):
    """A recording as a list shows it."""

    recording_id: str
    status: str | None
    accepted_at: int | None = Field(description="epoch ms")
    updated_at: int | None = Field(description="epoch ms")
    archived: bool
    last_error: str | None


class RecordingList(BaseModel):
    """A page of recordings."""

    data: list[RecordingSummary] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for older recordings")


class RecordingStatus(BaseModel):
    """All the relay knows of a recording (`service.operations.recordings.Recordings.detail`)."""

    recording_id: str
    status: str | None = Field(
        description="queued, details_fetched, transcribing, transcribed, failed, ignored, "
        "not_transcribed (backfilled without transcription) or erased"
    )
    source: str = Field(description="callback, reconciliation or backfill")
    steps: dict[str, int | None] = Field(description="each step's time, epoch ms")
    plivo_requests: int
    last_error: str | None
    archived: bool
    audio: list[dict[str, Any]] | None = Field(description="the archived audio: key, size, sha256")
    callback: dict[str, Any] | None
    other_callbacks: list[dict[str, Any]]
    events: list[Event | RecordingErased]
    attempts: list[Attempt]
    erasure: dict[str, str | None] | None = Field(
        default=None, description="an erased recording: its erasure's id and reason"
    )


class RecordingsAPI:
    """`GET /v1/recordings` and `GET /v1/recordings/{recording_id}`."""

    def __init__(self, recordings: Recordings, auth: AdminAuth) -> None:
        self.recordings = recordings
        self.auth = auth

    @documented(
        "listRecordings",
        {
            200: ("a page of recordings", RecordingList),
            422: ("a bad filter, limit or cursor", ERROR),
        },
        summary="The recordings of the retention window, newest first",
        query=FILTERS,
    )
    async def list(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        page = Page.of(request.query_params)
        query = request.query_params
        status = query.get("status")
        if status is not None and status not in STATUSES:
            raise Invalid("status", f"must be one of {', '.join(STATUSES)}")
        since = _moment(query.get("since"), "since", 0.0)
        until = _moment(query.get("until"), "until", float("inf"))
        found, cursor = await self.recordings.find(
            page.offset, page.limit, since, until, lambda s: status in (None, s.status)
        )
        listed = RecordingList.model_validate(
            {"data": [summary(s) for s in found], "next_cursor": cursor}
        )
        return JSONResponse(listed.model_dump())

    @documented(
        "getRecording",
        {
            200: ("the recording's state", RecordingStatus),
            404: ("a recording the relay does not know", ERROR),
        },
        summary="A recording's pipeline state, steps, Plivo requests and events",
    )
    async def get(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        return JSONResponse(await self.recordings.detail(request.path_params["recording_id"]))


def _moment(value: str | None, name: str, default: float) -> float:
    """An ISO 8601 query parameter as epoch ms; `Invalid` naming it if it is not one."""
    if value is None:
        return default
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(name, "not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000
