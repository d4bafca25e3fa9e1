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

from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.operations.admin_auth import AdminAuth
from service.storage.reconciliation import Backfill, BackfillStore
from service.web.api.subscriptions import Unprocessable, read_json


class BackfillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: str
    until: str | None = None
    transcribe: bool = True


class BackfillsAPI:
    def __init__(self, store: BackfillStore, auth: AdminAuth, concurrency: int) -> None:
        self.store = store
        self.auth = auth
        self.concurrency = concurrency

    async def start(self, asked: BackfillRequest) -> Backfill:
        """The backfill `asked` names, in the line (`Unprocessable` naming a bad bound)."""
        try:
            backfill, _ = await self.store.begin(asked.since, asked.until, asked.transcribe)
        except ValueError as error:
            field, _, message = str(error).partition(": ")
            raise Unprocessable(field, message) from None
        await self.store.wake(self.concurrency)
        return backfill

    async def end(self, backfill_id: str) -> Backfill:
        """Cancel a backfill (404 if unknown) and start the next in line."""
        backfill = await self.store.cancel(backfill_id)
        if backfill is None:
            raise HTTPException(404, f"backfill {backfill_id[:80]!r} is unknown to the relay")
        await self.store.wake(self.concurrency)
        return backfill

    async def create(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        asked: BackfillRequest = await read_json(request, BackfillRequest)
        return JSONResponse(asdict(await self.start(asked)), status_code=202)

    async def list(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        return JSONResponse({"data": [asdict(b) for b in await self.store.recent()]})

    async def get(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        return JSONResponse(asdict(await self._find(request)))

    async def cancel(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        return JSONResponse(asdict(await self.end(request.path_params["backfill_id"])))

    async def _find(self, request: Request) -> Backfill:
        backfill_id = request.path_params["backfill_id"]
        backfill = await self.store.get(backfill_id)
        if backfill is None:
            raise HTTPException(404, f"backfill {backfill_id[:80]!r} is unknown to the relay")
        return backfill
