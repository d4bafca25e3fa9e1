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

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.operations.admin_auth import AdminAuth
from service.operations.backfills import BackfillRequest, Backfills
from service.web.body import read_json


class BackfillsAPI:
    """The handlers of `/v1/backfills` and `/v1/backfills/{backfill_id}`."""

    def __init__(self, backfills: Backfills, auth: AdminAuth) -> None:
        self.backfills = backfills
        self.auth = auth

    async def create(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        asked: BackfillRequest = await read_json(request, BackfillRequest)
        return JSONResponse(asdict(await self.backfills.start(asked)), status_code=202)

    async def list(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        return JSONResponse({"data": [asdict(b) for b in await self.backfills.recent()]})

    async def get(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        found = await self.backfills.find(request.path_params["backfill_id"])
        return JSONResponse(asdict(found))

    async def cancel(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        return JSONResponse(asdict(await self.backfills.end(request.path_params["backfill_id"])))
