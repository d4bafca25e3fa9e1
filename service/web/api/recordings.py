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

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.domain.problems import Invalid
from service.operations.admin_auth import AdminAuth
from service.operations.paging import Page
from service.operations.recordings import STATUSES, Recordings, summary


class RecordingsAPI:
    """`GET /v1/recordings` and `GET /v1/recordings/{recording_id}`."""

    def __init__(self, recordings: Recordings, auth: AdminAuth) -> None:
        self.recordings = recordings
        self.auth = auth

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
        return JSONResponse({"data": [summary(s) for s in found], "next_cursor": cursor})

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
