"""The dashboard's backfills page: the latest backfills, their progress, a form to start one and
a button to cancel one that has not ended; through `BackfillsAPI`, as the management API does."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from service.dashboard.pages import Dashboard
from service.dashboard.session import check_csrf
from service.web.api.backfills import BackfillRequest, BackfillsAPI
from service.web.errors import first_problem


class BackfillPages:
    def __init__(self, pages: Dashboard, api: BackfillsAPI) -> None:
        self.pages = pages
        self.api = api

    async def list(self, request: Request, status_code: int = 200, error: str = "") -> Response:
        backfills = await self.api.store.recent()
        return self.pages.render(
            request,
            "backfills.html",
            status_code,
            backfills=backfills,
            concurrency=self.api.concurrency,
            error=error,
        )

    async def start(self, request: Request) -> Response:
        form = await check_csrf(request)
        asked = {
            "since": form.get("since", ""),
            "until": form.get("until") or None,
            "transcribe": form.get("transcribe") == "true",
        }
        try:
            backfill = await self.api.start(BackfillRequest.model_validate(asked))
        except ValidationError as error:
            return await self.list(request, 422, error=": ".join(first_problem(error, "form")))
        except HTTPException as error:
            return await self.list(request, error.status_code, error=error.detail)
        return self.pages.back(request, "/backfills", f"Backfill {backfill.id}: {backfill.status}.")

    async def cancel(self, request: Request) -> Response:
        await check_csrf(request)
        backfill = await self.api.end(request.path_params["backfill_id"])
        return self.pages.back(request, "/backfills", f"Backfill {backfill.id}: {backfill.status}.")
