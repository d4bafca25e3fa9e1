"""The baseline of bench/ingest.py: a Starlette endpoint that reads the body and answers 200."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def endpoint(request: Request) -> Response:
    await request.body()
    return Response(b"<Response></Response>", media_type="application/xml")


app = Starlette(routes=[Route("/plivo/recording", endpoint, methods=["GET", "POST"])])
