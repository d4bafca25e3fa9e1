"""`/v1/backfills`: start a backfill without a shell (a PaaS operator's way to
`python -m workers backfill`), and follow its progress.

- `POST /v1/backfills` `{"since", "until"?, "transcribe"?}`: `202` with the backfill (`id`,
  window, `status`, counts); a worker walks it (`workers.reconciliation`). The same window and
  choice name the same backfill: asking again while it runs answers it as it is.
- `GET /v1/backfills/{id}`: its progress: `status` (`running`, `done`, `failed`), `found`,
  `known` (already seen: nothing done), `queued`.
"""

from __future__ import annotations

from dataclasses import asdict

from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.admin_auth import AdminAuth
from service.storage import jobs
from service.storage.reconciliation import BackfillStore
from service.subscriptions_api import Unprocessable, read_json


class BackfillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: str
    until: str | None = None
    transcribe: bool = True


class BackfillsAPI:
    def __init__(self, store: BackfillStore, auth: AdminAuth) -> None:
        self.store = store
        self.auth = auth

    async def create(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        asked: BackfillRequest = await read_json(request, BackfillRequest)
        try:
            backfill, _ = await self.store.begin(asked.since, asked.until, asked.transcribe)
        except ValueError as error:
            field, _, message = str(error).partition(": ")
            raise Unprocessable(field, message) from None
        await jobs.enqueue(self.store.redis, jobs.RUN_BACKFILL, backfill.id)
        return JSONResponse(asdict(backfill), status_code=202)

    async def get(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        backfill_id = request.path_params["backfill_id"]
        backfill = await self.store.get(backfill_id)
        if backfill is None:
            raise HTTPException(404, f"backfill {backfill_id[:80]!r} is unknown to the relay")
        return JSONResponse(asdict(backfill))
