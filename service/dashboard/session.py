"""The dashboard's login: an admin token, once, for a session kept on the server.

The cookie (`relay_dashboard`) holds only the session's random id; it is `HttpOnly`,
`SameSite=Strict`, scoped to `/dashboard`, `Secure` when `PUBLIC_BASE_URL` is https, and set
once, at login. The session itself is in Redis (`service.storage.sessions`): it ends
`SESSION_HOURS` after the login whatever happens meanwhile, at logout, or when the admin token
that opened it is retired; a cookie copied before any of these opens nothing after. Each session
has a CSRF token that every form carries and every POST must echo (`check_csrf`): with
`SameSite=Strict` too, a page on another site can neither read it nor send the cookie. Failed
logins are logged and throttled like every admin-token check (`service.operations.admin_auth`).
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from http.cookies import SimpleCookie
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.operations.admin_auth import AdminAuth
from service.storage.sessions import SESSION_HOURS, Sessions

COOKIE = "relay_dashboard"
OPEN = ("/login", "/static/")  # what needs no session
MAX_FORM_BYTES = 64 * 1024

__all__ = ["COOKIE", "SESSION_HOURS", "ServerSessions"]


class ServerSessions:
    """Puts the request's session (`request.session`, a dict) in its scope, read from Redis by
    the cookie's id, and keeps what the handler changed: a new session (a login) sets the
    cookie, an emptied one (a logout) deletes the session and the cookie."""

    def __init__(
        self, app: ASGIApp, sessions: Sessions, admin: AdminAuth, https: bool = False
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.admin = admin
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session_id = _cookie(scope)
        found = await self.sessions.read(session_id) if session_id else None
        data: dict[str, Any] = {}
        until = 0.0
        if found is not None:
            data, until = found
            if not self.admin.in_use(str(data.get("token", ""))):  # its token was retired
                await self.sessions.close(session_id)
                data = {}
        scope["session"] = dict(data)
        before = json.dumps(data, sort_keys=True)

        async def keeping(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._keep(scope, session_id, before, until, message)
            await send(message)

        await self.app(scope, receive, keeping)

    async def _keep(
        self, scope: Scope, session_id: str, before: str, until: float, message: Message
    ) -> None:
        now = scope["session"]
        if json.dumps(now, sort_keys=True) == before:
            return
        headers = MutableHeaders(scope=message)
        if not now:  # logged out
            if session_id:
                await self.sessions.close(session_id)
            headers.append("set-cookie", self._cookie("", 0))
        elif now.get("new"):  # logged in
            del now["new"]
            if session_id:
                await self.sessions.close(session_id)  # never keep a session id from before
            new_id = await self.sessions.open(now)
            headers.append("set-cookie", self._cookie(new_id, self.sessions.seconds))
        elif session_id:
            await self.sessions.save(session_id, now, until)

    def _cookie(self, value: str, max_age: int) -> str:
        secure = "; Secure" if self.https else ""
        return (
            f"{COOKIE}={value}; Path=/dashboard; Max-Age={max_age}; HttpOnly; "
            f"SameSite=Strict{secure}"
        )


def _cookie(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed Cookie header: as if there were none
                return ""
            if COOKIE in jar:
                return jar[COOKIE].value
    return ""


class RequireLogin:
    """Every page and action but the login page and the static files needs a session: without
    one a page redirects to the login page, and the overview's live figures answer 401. Runs
    inside `ServerSessions`, which has read the session."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("session", {}).get("user") != "admin":
            root = scope.get("root_path", "")
            path = scope["path"].removeprefix(root)
            if not path.startswith(OPEN):
                answer: Response = RedirectResponse(f"{root}/login", status_code=303)
                if path == "/live":
                    answer = Response("log in again", status_code=401)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def log_in(request: Request, token_fingerprint: str) -> None:
    """A new session (a new id: nothing of one from before carries over)."""
    request.session.clear()
    request.session.update(
        user="admin",
        csrf=secrets.token_urlsafe(24),
        token=token_fingerprint,
        since=time.time(),
        new=True,
    )


def logged_in(request: Request) -> bool:
    return request.session.get("user") == "admin"


def csrf_token(request: Request) -> str:
    return str(request.session.get("csrf", ""))


async def check_csrf(request: Request) -> dict[str, str]:
    """The POSTed form, once its CSRF token is the session's; 403 otherwise."""
    form = await request.form(max_files=0, max_fields=100, max_part_size=MAX_FORM_BYTES)
    presented = form.get("csrf")
    expected = csrf_token(request)
    if not expected or not isinstance(presented, str):
        raise HTTPException(403, "the form's CSRF token is missing: reload the page")
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise HTTPException(403, "the form's CSRF token is not this session's: reload the page")
    return {name: value for name, value in form.items() if isinstance(value, str)}
