"""Downstream subscribers for tests: real HTTP servers on loopback that record what they get."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int | None  # what the receiver answered (None: it hung)


@dataclass
class Receiver:
    """Answers each POST with the next of `answers` (then the last one, repeated)."""

    answers: list[int] = field(default_factory=lambda: [200])
    hang: bool = False
    delay: float = 0.0  # seconds before answering: a slow subscriber
    got: list[Received] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            status = self.answers[min(len(self.got), len(self.answers) - 1)]
            hang = self.hang
            body = await request.body()
            self.got.append(Received(dict(request.headers), body, None if hang else status))
            if hang:
                await asyncio.Event().wait()  # never answers; the relay's timeout ends it
            if self.delay:
                await asyncio.sleep(self.delay)
            return Response(f"answer {status}", status_code=status, headers=self.headers)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])
