"""`/v1/backfills`: start a backfill without a shell (a PaaS operator's way to
`python -m workers backfill`), and follow its progress.

- `POST /v1/backfills` `{"since", "until"?, "transcribe"?}`: `202` with the backfill (`id`,
  window, `status`, counts); a worker walks it (`workers.reconciliation`) when its turn comes
  (`BACKFILL_CONCURRENCY` at a time, in the order asked for). The same window and choice name
  the same backfill: asking again before it ended answers it as it is.
- `GET /v1/backfills`: the latest 50, newest first.
- `GET /v1/backfills/{id}`: its progress: `status` (`queued`, `running`, `done`, `failed`,
  `cancelled`), `found`, `known` (already seen: nothing done), `queued`.
- `DELETE /v1/backfills/{id}`: cancel it (`200`, `cancelled`): a running one stops after the
  page at hand, and the next in line starts. An ended one is answered as it is.
"""

from __future__ import annotations

from dataclasses import asdict

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.operations.admin_auth import AdminAuth
from service.operations.backfills import BackfillRequest, Backfills
from service.storage.reconciliation import Backfill
from service.web.api.operation import BAD_BODY, ERROR, documented
from service.web.body import read_json

UNKNOWN = {404: ("no such backfill", ERROR)}
LINKS = {
    "GetBackfill": {
        "operationId": "getBackfill",
        "parameters": {"backfill_id": "$response.body#/id"},
    },
    "CancelBackfill": {
        "operationId": "cancelBackfill",
        "parameters": {"backfill_id": "$response.body#/id"},
    },
}


class BackfillList(BaseModel):
    """The latest backfills, newest first."""

    data: list[Backfill]


class BackfillsAPI:
    """The handlers of `/v1/backfills` and `/v1/backfills/{backfill_id}`."""

    def __init__(self, backfills: Backfills, auth: AdminAuth) -> None:
        self.backfills = backfills
        self.auth = auth

    @documented(
        "createBackfill",
        {
            202: (
                "in the line (queued or running), or asked for before and not ended",
                Backfill,
            ),
            **BAD_BODY,
        },
        summary="Take up the recordings of a past window the relay never saw",
        body=BackfillRequest,
        extra={"links": LINKS},
    )
    async def create(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        asked: BackfillRequest = await read_json(request, BackfillRequest)
        return JSONResponse(asdict(await self.backfills.start(asked)), status_code=202)

    @documented(
        "listBackfills",
        {200: ("the backfills", BackfillList)},
        summary="The latest 50 backfills, newest first",
    )
    async def list(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        listed = BackfillList(data=await self.backfills.recent())
        return JSONResponse(listed.model_dump(mode="json"))

    @documented(
        "getBackfill",
        {200: ("its window, status and counts", Backfill), **UNKNOWN},
        summary="A backfill's progress",
    )
    async def get(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        found = await self.backfills.find(request.path_params["backfill_id"])
        return JSONResponse(asdict(found))

    @documented(
        "cancelBackfill",
        {200: ("cancelled (an ended one: as it is)", Backfill), **UNKNOWN},
        summary="Cancel a backfill (a running one stops after the page at hand)",
    )
    async def cancel(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        return JSONResponse(asdict(await self.backfills.end(request.path_params["backfill_id"])))
