"""The operator dashboard, `/dashboard/`: server-rendered pages over the relay's own stores.

- `session`: logging in with the admin token, the session cookie, CSRF.
- `overview`: counts, charts, queue depths, subscription health.
- `pages`: every page and action but the backfills' (`backfills`) and erasure's
  (`erasures`); templates in `templates/`, CSS and the one script (live updates of the
  overview) in `static/`, all shipped in the package: nothing from a CDN, and every page works
  without JavaScript.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from service.dashboard.backfills import BackfillPages
from service.dashboard.erasures import ErasurePages
from service.dashboard.pages import TEMPLATES, AnswerTo, Dashboard
from service.dashboard.session import RequireLogin, ServerSessions
from service.domain.problems import Problem
from service.operations.admin_auth import AdminAuth
from service.operations.backfills import Backfills
from service.operations.erasures import Erasures
from service.settings import Settings
from service.storage.sessions import Sessions

__all__ = ["Dashboard", "create_dashboard"]


def _error_pages(answer_to: AnswerTo) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The page of a refusal: an HTTP error, or a domain error answered as the web layer says."""

    async def error_page(request: Request, exc: Exception) -> Response:
        if isinstance(exc, Problem):
            exc = answer_to(exc)
        assert isinstance(exc, HTTPException)
        context = {"status_code": exc.status_code, "message": exc.detail, "csrf": "", "page": ""}
        return TEMPLATES.TemplateResponse(
            request, "error.html", context, status_code=exc.status_code, headers=exc.headers
        )

    return error_page


def create_dashboard(
    settings: Settings,
    dashboard: Dashboard,
    sessions: Sessions,
    admin: AdminAuth,
    backfills: Backfills,
    erasures: Erasures,
) -> Starlette:
    """The dashboard as an app of its own, to mount at `/dashboard`."""
    d, b = dashboard, BackfillPages(dashboard, backfills)
    e = ErasurePages(dashboard, erasures)
    routes = [
        Route("/", d.home, methods=["GET"]),
        Route("/live", d.live, methods=["GET"]),
        Route("/login", d.login_form, methods=["GET"]),
        Route("/login", d.login, methods=["POST"]),
        Route("/logout", d.logout, methods=["POST"]),
        Route("/recordings", d.recording_list, methods=["GET"]),
        Route("/recordings/{recording_id}", e.recording, methods=["GET"]),
        Route("/recordings/{recording_id}/replay", d.replay, methods=["POST"]),
        Route("/recordings/{recording_id}/erase", e.erase, methods=["POST"]),
        Route("/recordings/{recording_id}/hold", e.hold, methods=["POST"]),
        Route("/recordings/{recording_id}/release", e.release, methods=["POST"]),
        Route("/erasures", e.list, methods=["GET"]),
        Route("/subscriptions", d.subscription_list, methods=["GET"]),
        Route("/subscriptions", d.create_subscription, methods=["POST"]),
        Route("/subscriptions/{subscription_id}", d.subscription, methods=["GET"]),
        Route("/subscriptions/{subscription_id}", d.edit_subscription, methods=["POST"]),
        Route("/subscriptions/{subscription_id}/rotate-secret", d.rotate_secret, methods=["POST"]),
        Route("/subscriptions/{subscription_id}/auth", d.edit_auth, methods=["POST"]),
        Route("/subscriptions/{subscription_id}/recover", d.recover, methods=["POST"]),
        Route("/backfills", b.list, methods=["GET"]),
        Route("/backfills", b.start, methods=["POST"]),
        Route("/backfills/{backfill_id}/cancel", b.cancel, methods=["POST"]),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
    ]
    session = Middleware(
        ServerSessions,
        sessions=sessions,
        admin=admin,
        https=(settings.public_base_url or "").startswith("https://"),
    )
    error_page = _error_pages(dashboard.answer_to)
    app = Starlette(
        routes=routes,
        middleware=[session, Middleware(RequireLogin)],
        exception_handlers={HTTPException: error_page, Problem: error_page},
    )
    app.router.redirect_slashes = False  # its redirects would carry the caller's Host
    return app
