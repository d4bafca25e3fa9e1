"""The dashboard's pages and actions. Each page reads through the same stores and operations as
the management API (`service.operations`: `Recordings.find/detail`, `Redelivery.replay/recover`,
`Subscriptions.add/change`), so the two cannot disagree; every action is a POST that
carries the session's CSRF token, and answers with a redirect (or, where a secret is shown
once, the page itself)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from service.dashboard.session import MAX_FORM_BYTES, check_csrf, csrf_token, log_in, logged_in
from service.domain.callbacks import is_recording_id
from service.domain.endpoint_auth import BasicAuth, OAuth2
from service.domain.media_links import MediaLinks
from service.domain.problems import (
    Problem,
    first_problem,
)
from service.domain.subscriptions import (
    RECORDING_EVENTS,
    Subscription,
    SubscriptionCreate,
    SubscriptionPatch,
)
from service.operations.admin_auth import AdminAuth
from service.operations.overview import Overview
from service.operations.recordings import STATUSES, Recordings
from service.operations.redelivery import Redelivery
from service.operations.subscriptions import Subscriptions
from service.settings import Settings
from service.storage.deliveries import Deliveries
from service.storage.recordings import RecordingState
from service.storage.subscriptions import SubscriptionStore

# How a refusal is answered (`service.web.errors.answer_to`, handed in by the app: the web
# layer is the one home of status codes).
AnswerTo = Callable[[Problem], HTTPException]


TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
SOURCES = ("callback", "reconciliation", "backfill")
EVENT_CHOICES = (*RECORDING_EVENTS, "subscription.disabled")
OUTCOMES = ("succeeded", "failed")
PAGE_SIZE = 50
PREVIEW_EVENTS = 50  # the events a subscription's filter is tried on
MARKER = re.compile(r"\[(?:card|ssn|email|phone)\]")  # what REDACT leaves in place


def _when(value: float | None, unit: float = 1.0) -> str:
    """An epoch time (`unit`: 1 for seconds, 1000 for ms) as UTC, to the second."""
    if not value:
        return ""
    moment = datetime.fromtimestamp(value / unit, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.filters["when_ms"] = lambda value: _when(value, 1000)
TEMPLATES.env.filters["marked"] = lambda text: Markup(
    MARKER.sub(r'<mark class="redacted">\g<0></mark>', str(escape(text)))
)
TEMPLATES.env.filters["pretty"] = lambda doc: json.dumps(doc, indent=2, sort_keys=True)


class Dashboard:
    """The dashboard's pages and actions (the backfills' are `BackfillPages`)."""

    def __init__(
        self,
        settings: Settings,
        overview: Overview,
        recordings: Recordings,
        redelivery: Redelivery,
        changes: Subscriptions,
        subscriptions: SubscriptionStore,
        deliveries: Deliveries,
        links: MediaLinks,
        admin: AdminAuth,
        answer_to: AnswerTo,
    ) -> None:
        self.settings = settings
        self.overview = overview
        self.recordings = recordings
        self.redelivery = redelivery
        self.changes = changes
        self.subscriptions = subscriptions
        self.deliveries = deliveries
        self.links = links
        self.admin = admin
        self.answer_to = answer_to

    def _refusal(self, error: ValidationError | Problem) -> tuple[int, str]:
        """A refused form's status and message (naming the field), for the form's page."""
        if isinstance(error, ValidationError):
            field, problem = first_problem(error, "form")
            return 422, f"{field}: {problem}"
        answer = self.answer_to(error)
        return answer.status_code, answer.detail

    def render(
        self, request: Request, name: str, status_code: int = 200, **context: Any
    ) -> Response:
        flash = request.session.pop("flash", None) if logged_in(request) else None
        context = {"csrf": csrf_token(request), "flash": flash, "page": name, **context}
        return TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)

    def back(self, request: Request, path: str, flash: str) -> Response:
        request.session["flash"] = flash
        return RedirectResponse(f"{request.scope.get('root_path', '')}{path}", status_code=303)

    # -- logging in and out ----------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        if logged_in(request):
            return RedirectResponse(f"{request.scope.get('root_path', '')}/", status_code=303)
        return self.render(request, "login.html")

    async def login(self, request: Request) -> Response:
        await self.admin.allowed(request)  # 429 for an address that failed too often
        form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_FORM_BYTES)
        token = form.get("token")
        fingerprint = self.admin.matching(token) if isinstance(token, str) else None
        if fingerprint is None:
            await self.admin.failed(request, "dashboard login with a wrong token")
            return self.render(request, "login.html", 401, error="That is not the admin token.")
        log_in(request, fingerprint)
        return RedirectResponse(f"{request.scope.get('root_path', '')}/", status_code=303)

    async def logout(self, request: Request) -> Response:
        if logged_in(request):
            await check_csrf(request)
        request.session.clear()
        return RedirectResponse(f"{request.scope.get('root_path', '')}/login", status_code=303)

    # -- the overview ----------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return self.render(request, "overview.html", **await self.overview.page())

    async def live(self, request: Request) -> Response:
        """The overview's figures alone, for the page's script to swap in."""
        return self.render(request, "overview_live.html", **await self.overview.page())

    # -- recordings ------------------------------------------------------------------------

    async def recording_list(self, request: Request) -> Response:
        query = request.query_params
        status, source = query.get("status") or None, query.get("source") or None
        search = (query.get("q") or "").strip()
        if status is not None and status not in STATUSES:
            raise HTTPException(422, f"status: must be one of {', '.join(STATUSES)}")
        if source is not None and source not in SOURCES:
            raise HTTPException(422, f"source: must be one of {', '.join(SOURCES)}")
        cursor = query.get("cursor") or "0"
        if not (cursor.isascii() and cursor.isdigit() and len(cursor) < 10):
            raise HTTPException(422, "cursor: not a cursor this page gave out")

        def wanted(state: RecordingState) -> bool:
            return (
                status in (None, state.status)
                and source in (None, state.source)
                and (not search or search in (state.recording_id, state.call_uuid))
            )

        found, next_cursor = await self.recordings.find(int(cursor), PAGE_SIZE, wanted=wanted)
        if search and is_recording_id(search) and not found:  # older than the index's page
            state = await self.recordings.store.state(search)
            found = [state] if state is not None else []
        filters = {"status": status or "", "source": source or "", "q": search}
        return self.render(
            request,
            "recordings.html",
            recordings=found,
            next_cursor=next_cursor,
            filters=filters,
            statuses=STATUSES,
            sources=SOURCES,
        )

    async def recording(self, request: Request, **extra: Any) -> Response:
        """A recording's page (`extra`: more for its template: its legal hold)."""
        detail = await self.recordings.detail(request.path_params["recording_id"])
        events = detail["events"]
        media = next((e["data"]["media"] for e in events if e["data"].get("media")), None)
        transcript = next(
            (e["data"]["transcript"] for e in events if e["data"].get("transcript")), None
        )
        timed = bool(transcript and transcript.get("timed"))
        links = await self.links.ready()
        fresh = None
        if media:
            forms = ("vtt",) if timed else ()
            fresh = links.link(detail["recording_id"], media["format"], transcript=forms)
        link = fresh.url if fresh else None
        track = (fresh.transcript or {}).get("vtt") if fresh else None
        by_subscriber: dict[str, list[dict[str, Any]]] = {}
        for attempt in detail["attempts"]:
            by_subscriber.setdefault(attempt["subscription_id"], []).append(attempt)
        subscriptions, _ = await self.subscriptions.scan()
        return self.render(
            request,
            "recording.html",
            r=detail,
            media_link=link,
            track=track,
            transcript=transcript,
            link_hours=round(self.settings.media_link_ttl / 3600, 1),
            attempts=by_subscriber,
            subscriptions=subscriptions,
            **extra,
        )

    async def replay(self, request: Request) -> Response:
        form = await check_csrf(request)
        recording_id = request.path_params["recording_id"]
        only = form.get("subscription_id") or None
        queued = await self.redelivery.replay(recording_id, only)
        return self.back(request, f"/recordings/{recording_id}", f"Replay: {queued} queued.")

    # -- subscriptions ---------------------------------------------------------------------

    async def subscription_list(self, request: Request) -> Response:
        return await self._subscriptions_page(request)

    async def _subscriptions_page(
        self, request: Request, status_code: int = 200, **context: Any
    ) -> Response:
        found, unreadable = await self.subscriptions.scan()
        return self.render(
            request,
            "subscriptions.html",
            status_code,
            subscriptions=found,
            unreadable=unreadable,
            event_choices=EVENT_CHOICES,
            default_events=RECORDING_EVENTS,
            **context,
        )

    async def create_subscription(self, request: Request) -> Response:
        form = await check_csrf(request)
        events = (await request.form()).getlist("events")
        wanted = {"url": form.get("url", ""), "description": form.get("description", "")}
        if events:
            wanted["events"] = events  # type: ignore[assignment]
        try:
            created = await self.changes.add(SubscriptionCreate.model_validate(wanted))
        except (ValidationError, Problem) as error:
            status, message = self._refusal(error)
            return await self._subscriptions_page(request, status, error=message)
        return self._reveal(request, created, "Created.")

    async def _find(self, request: Request) -> Subscription:
        found = await self.subscriptions.get(request.path_params["subscription_id"])
        if not isinstance(found, Subscription):
            raise HTTPException(404, "no such subscription (or an unreadable one)")
        return found

    async def subscription(self, request: Request) -> Response:
        subscription = await self._find(request)
        if request.session.pop("reveal", None) == subscription.id:
            return await self._subscription_page(
                request, subscription, secret_shown=subscription.secret
            )
        return await self._subscription_page(request, subscription)

    async def _subscription_page(
        self, request: Request, subscription: Subscription, status_code: int = 200, **context: Any
    ) -> Response:
        outcome = request.query_params.get("outcome") or None
        if outcome is not None and outcome not in OUTCOMES:
            raise HTTPException(422, f"outcome: must be one of {', '.join(OUTCOMES)}")
        log, total = await self.deliveries.attempts(subscription.id)
        if outcome is not None:
            log = [a for a in log if a.succeeded == (outcome == "succeeded")]
        preview = None
        if request.query_params.get("preview"):
            preview = [
                {
                    "type": e["type"],
                    "recording_id": e["data"].get("recording_id"),
                    "received": subscription.wants(e["type"]) and subscription.accepts(e),
                }
                for e in await self.recordings.recent_events(PREVIEW_EVENTS)
            ]
        return self.render(
            request,
            "subscription.html",
            status_code,
            s=subscription,
            attempts=log[::-1][:200],  # newest first
            total=total,
            outcome=outcome or "",
            event_choices=EVENT_CHOICES,
            failing_since=await self.deliveries.failing_since(subscription.id),
            preview=preview,
            **context,
        )

    async def edit_subscription(self, request: Request) -> Response:
        subscription = await self._find(request)
        form = await check_csrf(request)
        changes: dict[str, Any] = {}
        if "url" in form:
            changes["url"] = form["url"]
        if "description" in form:
            changes["description"] = form["description"]
        if form.get("events_shown"):
            changes["events"] = (await request.form()).getlist("events")
        if "enabled" in form:
            changes["enabled"] = form["enabled"] == "true"
        if "filter" in form:
            try:
                changes["filter"] = json.loads(str(form["filter"]).strip() or "{}")
            except ValueError:
                error = "filter: not JSON (an object, or {} for every event)"
                return await self._subscription_page(request, subscription, 422, error=error)
        if "rate_limit" in form:
            changes["rate_limit"] = form["rate_limit"].strip() or 0
        return await self._change(request, subscription, changes)

    async def edit_auth(self, request: Request) -> Response:
        """The authentication card: a secret left empty is the one kept (never shown)."""
        subscription = await self._find(request)
        form = await check_csrf(request)
        kind = form.get("auth_type", "none")
        kept = subscription.auth
        auth: dict[str, Any] = {"type": kind}
        if kind == "basic":
            old = kept.password if isinstance(kept, BasicAuth) else ""
            auth |= {"username": form.get("username", ""), "password": form.get("password") or old}
        elif kind == "oauth2":
            old = kept.client_secret if isinstance(kept, OAuth2) else ""
            auth |= {
                "token_url": form.get("token_url", ""),
                "client_id": form.get("client_id", ""),
                "client_secret": form.get("client_secret") or old,
                "scope": form.get("scope") or None,
            }
        return await self._change(request, subscription, {"auth": auth})

    async def _change(
        self, request: Request, subscription: Subscription, changes: dict[str, Any]
    ) -> Response:
        try:
            patch = SubscriptionPatch.model_validate(changes)
            await self.changes.change(subscription, patch)
        except (ValidationError, Problem) as error:
            status, message = self._refusal(error)
            return await self._subscription_page(request, subscription, status, error=message)
        return self.back(request, f"/subscriptions/{subscription.id}", "Saved.")

    async def rotate_secret(self, request: Request) -> Response:
        subscription = await self._find(request)
        await check_csrf(request)
        rotated = await self.subscriptions.rotate(subscription)
        return self._reveal(request, rotated, "Rotated.")

    def _reveal(self, request: Request, subscription: Subscription, flash: str) -> Response:
        """To the subscription's page, which shows its secret this once: the session carries
        only that permission, never the secret (a reload or a second look does not show it)."""
        request.session["reveal"] = subscription.id
        return self.back(request, f"/subscriptions/{subscription.id}", flash)

    async def recover(self, request: Request) -> Response:
        subscription = await self._find(request)
        form = await check_csrf(request)
        try:
            since = datetime.fromisoformat(form.get("since", ""))
        except ValueError:
            return await self._subscription_page(
                request, subscription, 422, error="since: not a date and time"
            )
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        if not 0 <= since.timestamp() <= time.time() + 86_400:
            return await self._subscription_page(
                request, subscription, 422, error="since: out of range"
            )
        queued = await self.redelivery.recover(subscription, since.timestamp())
        path = f"/subscriptions/{subscription.id}"
        return self.back(request, path, f"Recover: {queued} queued again.")
