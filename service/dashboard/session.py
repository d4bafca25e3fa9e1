"""The dashboard's login: the admin token, once, for a signed session cookie.

The cookie (`relay_dashboard`, Starlette's `SessionMiddleware`) is `HttpOnly`,
`SameSite=Strict`, scoped to `/dashboard`, `Secure` when `PUBLIC_BASE_URL` is https, and lasts
`SESSION_HOURS`. It is signed with a key derived from `ADMIN_TOKEN` (never the token itself),
so rotating the token ends every session. Each session has a CSRF token that every form
carries and every POST must echo (`check_csrf`): with `SameSite=Strict` too, a page on another
site can neither read it nor send the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.settings import Settings

COOKIE = "relay_dashboard"
SESSION_HOURS = 8
OPEN = ("/login", "/static/")  # what needs no session


class RequireLogin:
    """Every page and action but the login page and the static files needs a session: without
    one a page redirects to the login page, and the overview's live figures answer 401. Runs
    inside Starlette's `SessionMiddleware`, which has read the cookie."""

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


def session_key(settings: Settings) -> str:
    """The key session cookies are signed with, derived from `ADMIN_TOKEN`."""
    token = settings.admin_token.get_secret_value().encode()
    return hmac.new(token, b"recording-relay dashboard session", hashlib.sha256).hexdigest()


def token_matches(settings: Settings, presented: str) -> bool:
    return hmac.compare_digest(
        presented.strip().encode(), settings.admin_token.get_secret_value().encode()
    )


def log_in(request: Request) -> None:
    request.session.clear()
    request.session["user"] = "admin"
    request.session["csrf"] = secrets.token_urlsafe(24)


def logged_in(request: Request) -> bool:
    return request.session.get("user") == "admin"


def csrf_token(request: Request) -> str:
    return str(request.session.get("csrf", ""))


async def check_csrf(request: Request) -> dict[str, str]:
    """The POSTed form, once its CSRF token is the session's; 403 otherwise."""
    form = await request.form()
    presented = form.get("csrf")
    expected = csrf_token(request)
    if not expected or not isinstance(presented, str):
        raise HTTPException(403, "the form's CSRF token is missing: reload the page")
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise HTTPException(403, "the form's CSRF token is not this session's: reload the page")
    return {name: value for name, value in form.items() if isinstance(value, str)}
