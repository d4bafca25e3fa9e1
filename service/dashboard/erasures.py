"""The dashboard's erasure and legal holds: a recording page's Erase button (behind a
confirmation: the recording's id typed again) and its hold, placed with a reason or released;
and the Erasures page (the latest erasures and every hold in force). Through
`service.operations.erasures`, as the management API does; the audit names the session."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from service.dashboard.pages import Dashboard
from service.dashboard.session import check_csrf
from service.domain.callbacks import is_recording_id
from service.domain.erasure import HoldRequest
from service.domain.problems import first_problem
from service.operations.erasures import Erasures


def session_of(request: Request) -> str:
    """The dashboard session an audit record names: its token's fingerprint and login time."""
    token = str(request.session.get("token", ""))[:12]
    return f"dashboard:{token}@{int(float(request.session.get('since', 0)))}"


class ErasurePages:
    """The recording page's erasure and hold, and the Erasures page."""

    def __init__(self, pages: Dashboard, erasures: Erasures) -> None:
        self.pages = pages
        self.erasures = erasures

    async def recording(self, request: Request) -> Response:
        """The recording page, with its hold."""
        recording_id = request.path_params["recording_id"]
        hold = await self.erasures.held(recording_id) if is_recording_id(recording_id) else None
        return await self.pages.recording(request, hold=hold)

    async def erase(self, request: Request) -> Response:
        form = await check_csrf(request)
        recording_id = request.path_params["recording_id"]
        if form.get("confirm", "").strip() != recording_id:
            raise HTTPException(422, "confirm: type the recording's id to erase it")
        erasure_id = await self.erasures.erase(recording_id, session_of(request))
        flash = f"Erasure {erasure_id} started: the recording is being erased everywhere."
        return self.pages.back(request, f"/recordings/{recording_id}", flash)

    async def hold(self, request: Request) -> Response:
        form = await check_csrf(request)
        recording_id = request.path_params["recording_id"]
        try:
            asked = HoldRequest.model_validate({"reason": form.get("reason", "")})
        except ValidationError as error:
            raise HTTPException(422, ": ".join(first_problem(error, "form"))) from None
        await self.erasures.hold(recording_id, asked.reason, session_of(request))
        return self.pages.back(request, f"/recordings/{recording_id}", "Legal hold placed.")

    async def release(self, request: Request) -> Response:
        await check_csrf(request)
        recording_id = request.path_params["recording_id"]
        await self.erasures.release(recording_id, session_of(request))
        return self.pages.back(request, f"/recordings/{recording_id}", "Legal hold released.")

    async def list(self, request: Request) -> Response:
        return self.pages.render(
            request,
            "erasures.html",
            erasures=await self.erasures.recent(),
            holds=await self.erasures.all_holds(),
        )
