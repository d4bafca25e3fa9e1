"""The Plivo sandbox served on loopback, for tests of the client and of the sandbox itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sandbox.app import Sandbox, create_sandbox
from tests.support.servers import serve
from tests.support.settings import AUTH_ID, AUTH_TOKEN, SUB_AUTH_ID, SUB_AUTH_TOKEN


@dataclass
class RunningSandbox:
    url: str
    sandbox: Sandbox


@asynccontextmanager
async def running_sandbox() -> AsyncIterator[RunningSandbox]:
    app = create_sandbox({AUTH_ID: AUTH_TOKEN, SUB_AUTH_ID: SUB_AUTH_TOKEN})
    sandbox: Sandbox = app.state.sandbox
    async with serve(app) as url:
        sandbox.state.base_url = url
        yield RunningSandbox(url, sandbox)
    await sandbox.http.aclose()
