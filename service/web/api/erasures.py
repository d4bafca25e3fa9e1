"""Erasure and legal holds (`service.operations.erasures`, carried out by `workers.erasure`).

- `DELETE /v1/recordings/{id}`: `202` `{"erasure_id"}`; the recording's pipeline and pending
  webhooks stop before the answer, the rest follows (archive, Plivo, `recording.erased`).
  Erasing again answers the same erasure; a held recording is refused (`409` naming the hold).
- `POST /v1/erasures` `{"phone_number": "+14155550100"}` or `{"call_uuid"}`: `202` `{"id"}`;
  every recording of that number (the call's `From` or `To`) or call the relay archived.
- `GET /v1/erasures/{id}`: `status` (`running`, `done`, `failed`), `found`, `erased`, `held`,
  `failed`, and each recording's outcome, step by step (the audit record, once it has ended).
- `GET /v1/erasures`: the latest, newest first.
- `PUT /v1/recordings/{id}/hold` `{"reason"}` places a legal hold; `DELETE` releases it;
  `GET /v1/holds` lists them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.domain.erasure import Erasure, Hold, HoldRequest, SubjectRequest
from service.operations.admin_auth import AdminAuth
from service.operations.erasures import Erasures
from service.web.api.operation import BAD_BODY, ERROR, documented
from service.web.body import read_json

UNKNOWN_RECORDING = {404: ("a recording the relay has no trace of", ERROR)}


class ErasureAccepted(BaseModel):
    """An erasure of one recording, accepted."""

    erasure_id: str = Field(description="GET /v1/erasures/{id} follows it")


class ErasureProgress(Erasure):
    """An erasure, its progress, and each of its recordings' outcome so far."""

    recordings: list[dict[str, Any]] = Field(
        description="recording_id, outcome (erased, held, failed), and each step's: archive, "
        "plivo, event"
    )


class ErasureList(BaseModel):
    """The latest erasures, newest first."""

    data: list[Erasure]


class HoldList(BaseModel):
    """The legal holds in force, newest first."""

    data: list[Hold]


class ErasuresAPI:
    """The handlers of erasure and legal holds."""

    def __init__(self, erasures: Erasures, auth: AdminAuth) -> None:
        self.erasures = erasures
        self.auth = auth

    @documented(
        "eraseRecording",
        {
            202: ("the erasure (the same one for a recording erased before)", ErasureAccepted),
            409: ("the recording is under a legal hold: the answer names it", ERROR),
            **UNKNOWN_RECORDING,
        },
        summary="Erase a recording everywhere: the relay, the archive, Plivo, and subscribers",
    )
    async def erase(self, request: Request) -> JSONResponse:
        by = await self.auth.check(request)
        erasure_id = await self.erasures.erase(request.path_params["recording_id"], by)
        return JSONResponse({"erasure_id": erasure_id}, status_code=202)

    @documented(
        "eraseSubject",
        {202: ("the erasure", Erasure), **BAD_BODY},
        summary="Erase every recording of a phone number or a call",
        body=SubjectRequest,
        extra={
            "links": {
                "GetErasure": {
                    "operationId": "getErasure",
                    "parameters": {"erasure_id": "$response.body#/id"},
                }
            }
        },
    )
    async def erase_subject(self, request: Request) -> JSONResponse:
        by = await self.auth.check(request)
        asked: SubjectRequest = await read_json(request, SubjectRequest)
        erasure = await self.erasures.erase_subject(asked, by)
        return JSONResponse(erasure.model_dump(mode="json"), status_code=202)

    @documented(
        "getErasure",
        {200: ("its progress and outcomes", ErasureProgress), 404: ("no such erasure", ERROR)},
        summary="An erasure's progress, and its audit record once it has ended",
    )
    async def get(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        return JSONResponse(await self.erasures.get(request.path_params["erasure_id"]))

    @documented(
        "listErasures",
        {200: ("the latest erasures", ErasureList)},
        summary="The latest erasures, newest first",
    )
    async def list(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        listed = ErasureList(data=await self.erasures.recent())
        return JSONResponse(listed.model_dump(mode="json"))

    @documented(
        "holdRecording",
        {
            200: ("the hold, in force", Hold),
            409: ("the recording is erased", ERROR),
            **UNKNOWN_RECORDING,
            **BAD_BODY,
        },
        summary="Place a legal hold: retention and erasure keep the recording until released",
        body=HoldRequest,
    )
    async def hold(self, request: Request) -> JSONResponse:
        by = await self.auth.check(request)
        asked: HoldRequest = await read_json(request, HoldRequest)
        hold = await self.erasures.hold(request.path_params["recording_id"], asked.reason, by)
        return JSONResponse(hold.model_dump(mode="json"))

    @documented(
        "releaseHold",
        {204: "released", 404: ("the recording is under no legal hold", ERROR)},
        summary="Release a legal hold",
    )
    async def release(self, request: Request) -> Response:
        by = await self.auth.check(request)
        await self.erasures.release(request.path_params["recording_id"], by)
        return Response(status_code=204)

    @documented(
        "listHolds",
        {200: ("the holds in force", HoldList)},
        summary="The legal holds in force, newest first",
    )
    async def holds(self, request: Request) -> JSONResponse:
        await self.auth.check(request)
        listed = HoldList(data=await self.erasures.all_holds())
        return JSONResponse(listed.model_dump(mode="json"))
