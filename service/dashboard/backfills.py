"""The dashboard's backfills page: the latest backfills, their progress, a form to start one and
a button to cancel one that has not ended; through `service.operations.backfills`, as the
management API does."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from service.dashboard.pages import Dashboard
from service.dashboard.session import check_csrf
from service.domain.problems import Problem, first_problem
from service.operations.backfills import BackfillRequest, Backfills


class BackfillPages:
    """The dashboard's backfills page and its two actions."""

    def __init__(self, pages: Dashboard, backfills: Backfills) -> None:
        self.pages = pages
        self.backfills = backfills

    async def list(self, request: Request, status_code: int = 200, error: str = "") -> Response:
        backfills = await self.backfills.recent()
        return self.pages.render(
            request,
            "backfills.html",
            status_code,
            backfills=backfills,
            concurrency=self.backfills.concurrency,
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
            backfill = await self.backfills.start(BackfillRequest.model_validate(asked))
        except ValidationError as error:
            return await self.list(request, 422, error=": ".join(first_problem(error, "form")))
        except Problem as error:
            answer = self.pages.answer_to(error)
            return await self.list(request, answer.status_code, error=answer.detail)
        return self.pages.back(request, "/backfills", f"Backfill {backfill.id}: {backfill.status}.")

    async def cancel(self, request: Request) -> Response:
        await check_csrf(request)
        backfill = await self.backfills.end(request.path_params["backfill_id"])
        return self.pages.back(request, "/backfills", f"Backfill {backfill.id}: {backfill.status}.")
