"""One webhook attempt for one claimed delivery, and what follows from its answer.

Standard Webhooks headers, signed over the exact bytes sent with every current secret of the
subscription. The body is the event as it was emitted, with a fresh media link (`data.media`,
`service.domain.media_links`) in each attempt, so a late retry or a replay never carries a dead one.
A subscription's own authentication (Basic, an OAuth2 token, a client certificate) comes from
`workers.endpoint_auth`; failing to get it is a failed attempt like any other. Only 2xx is
success; what follows from any answer is `service.domain.attempts.decide` (the
retry schedule, `410 Gone`, `DELIVERY_DISABLE_AFTER`). A disabled subscription's
`subscription.disabled` event goes to those that asked for it.

Which delivery is attempted when (order, per-subscriber slots, leases) is the delivery queue's
business (`service.storage.deliveries`); running attempts side by side is the dispatcher's
(`workers.dispatcher`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook

from service.domain.attempts import Attempt, Decision, Outcome, RetryPolicy, decide
from service.domain.endpoint_auth import OAuth2
from service.domain.events import DisabledData, Media, SubscriptionDisabled, now_iso, with_media
from service.domain.media_links import MediaLinks
from service.domain.problems import first_problem
from service.domain.subscriptions import OPERATIONAL, Subscription, changed, parse
from service.domain.urls import origin
from service.logs import about
from service.metrics import Recorder
from service.settings import Settings
from service.ssrf import RefusedURL
from service.storage.deliveries import Claimed, Deliveries, DeliveryQueue, Next
from service.storage.subscriptions import SubscriptionStore
from workers import outbound
from workers.endpoint_auth import AuthFailed, Credentials

log = logging.getLogger("recording_relay.delivery")
BODY_LOG_BYTES = 4096


@dataclass(frozen=True)
class Settled:
    """How an attempt ended and what settling it led to (`Next`: a delivery due now, or the
    recording's next event to attempt at once)."""

    outcome: Outcome
    next: Next


def signature_header(subscription: Subscription, msg_id: str, timestamp: int, body: str) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(
        _signer(secret).sign(msg_id, moment, body) for secret in subscription.signing_secrets()
    )


@functools.lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    return Webhook(secret)


@functools.lru_cache(maxsize=1024)
def _parsed(url: str) -> httpx.URL:
    """A subscription's URL, parsed once (parsing is half of making a request: some 24 µs)."""
    return httpx.URL(url)


class Deliverer:
    """Attempts claimed deliveries and settles each."""

    def __init__(
        self,
        settings: Settings,
        subscriptions: SubscriptionStore,
        deliveries: Deliveries,
        queue: DeliveryQueue,
        credentials: Credentials,
        metrics: Recorder,
        links: MediaLinks,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.subscriptions = subscriptions
        self.deliveries = deliveries
        self.queue = queue
        # httpx's transports, not a client: no cookies, redirects or auth to carry from one
        # subscriber to the next, and a third less CPU per webhook. On
        # `ssrf.guarded_transport`, they refuse inward addresses; a subscriber's own auth and
        # TLS come from `credentials` (`workers.endpoint_auth`).
        self.credentials = credentials
        # Take a recording's next event at once as its previous one settles (not when the
        # process is stopping: it would only be released again).
        self.chain = True
        self.links = links
        self.policy = RetryPolicy(settings.delivery_retry_schedule, settings.delivery_disable_after)
        timeout = settings.delivery_timeout
        self.timeout = outbound.timeouts(timeout)

    async def deliver(self, claimed: Claimed) -> Settled:
        """Attempt `claimed` once and settle it: succeeded, failed, or due again later (or
        dropped: its subscription was deleted)."""
        settled = Settled(*await self._deliver(claimed))
        self.metrics.count("relay_webhook_attempts_total", outcome=settled.outcome)
        if settled.outcome == Outcome.SUCCEEDED and claimed.queued_at:
            self.metrics.observe(
                "relay_webhook_delivery_seconds", max(0.0, time.time() - claimed.queued_at)
            )
        return settled

    async def _deliver(self, claimed: Claimed) -> tuple[Outcome, Next]:
        """The attempt, what follows from it (`decide`), and its one settling."""
        attempt, decision = await self._attempt_and_decide(claimed)
        if decision.disable is not None:
            await self._disable(claimed.subscription_id, decision.disable)
        settled = await self.queue.settle(
            claimed,
            decision.outcome,
            attempt,
            retry_in=decision.retry_in,
            counts=decision.counts,
            chain=self.chain,
        )
        return decision.outcome, settled

    async def _attempt_and_decide(self, claimed: Claimed) -> tuple[Attempt, Decision]:
        """Attempt `claimed` if it can be, and decide what follows."""
        if not claimed.subscription:  # deleted with its logs: nothing is kept of this one
            return _unsent(), Decision(Outcome.DROPPED)
        try:
            subscription = parse(claimed.subscription)
        except ValidationError as unreadable:
            field, problem = first_problem(unreadable, "record")
            reason = f"the stored subscription is unreadable: {field}: {problem}"
            log.error(
                "delivery %s to %s: %s",
                claimed.msg_id,
                claimed.subscription_id,
                reason,
                extra=_about(claimed, error=reason),
            )
            return _unsent(reason), Decision(Outcome.FAILED)
        if not subscription.enabled:
            return _unsent("subscription disabled"), Decision(Outcome.FAILED)
        if not claimed.body:  # only a Redis that lost data forgets a body still owed
            reason = "the event's body is gone from Redis: replay it"
            return _unsent(reason), Decision(Outcome.FAILED)
        attempt = await self._attempt(subscription, claimed)
        failing_for = 0.0
        if not attempt.succeeded and not attempt.gone:
            # Settling a failed attempt starts the run of failures if this is its first.
            since = await self.deliveries.failing_since(subscription.id)
            failing_for = time.time() - since if since is not None else 0.0
        jitter = random.uniform(0.8, 1.2)
        decision = decide(attempt, claimed.attempts, failing_for, self.policy, jitter)
        _log(claimed, attempt, decision)
        return attempt, decision

    async def _attempt(self, subscription: Subscription, claimed: Claimed) -> Attempt:
        def fresh(media: Media) -> Media:
            forms = tuple(media.transcript or ())
            return self.links.link(claimed.recording_id, media.format, transcript=forms)

        await self.links.ready()
        msg_id, body = claimed.msg_id, with_media(claimed.body, fresh)
        timestamp = int(time.time())
        record = _unsent()
        started = time.monotonic()
        try:
            transport = self.credentials.transport_for(subscription)
            headers = {
                **subscription.headers,  # none of the names below (`RESERVED_HEADERS`)
                **await self.credentials.headers_for(subscription),
                "content-type": "application/json",
                "user-agent": "recording-relay",
                "webhook-id": msg_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature_header(subscription, msg_id, timestamp, body),
            }
            async with asyncio.timeout(self.settings.delivery_timeout):
                status, received, retry_after = await self._send(
                    transport, subscription, body, headers
                )
                if status == 401 and isinstance(subscription.auth, OAuth2):
                    # The token kept may have been revoked: one more try with a new one.
                    headers.update(await self.credentials.headers_for(subscription, fresh=True))
                    status, received, retry_after = await self._send(
                        transport, subscription, body, headers
                    )
            record.status_code = status
            record.response_body = received[:BODY_LOG_BYTES].decode(errors="replace")
            record.retry_after = _seconds(retry_after)
        except AuthFailed as error:
            record.error = str(error)
        except RefusedURL as error:  # from the guarded transport, on the address resolved
            record.error = f"refused: {error}"
        except (httpx.TimeoutException, TimeoutError):
            record.error = f"no answer within {self.settings.delivery_timeout:g} s"
        except httpx.HTTPError as error:
            record.error = f"{type(error).__name__}: {error}"[:300]
        except Exception as error:  # whatever it is, the attempt failed: settle it as one
            log.exception("delivery %s to %s: unexpected error", msg_id, subscription.id)
            record.error = f"{type(error).__name__}: {error}"[:300]
        record.latency_ms = round((time.monotonic() - started) * 1000, 1)
        return record

    async def _send(
        self,
        transport: httpx.AsyncBaseTransport,
        subscription: Subscription,
        body: str,
        headers: dict[str, str],
    ) -> tuple[int, bytes, str]:
        """One request: the answer's status, the start of its body, its `Retry-After`."""
        request = httpx.Request(
            "POST",
            _parsed(subscription.url),
            content=body.encode(),
            headers=headers,
            extensions={"timeout": self.timeout},
        )
        response, received = await outbound.send(transport, request, BODY_LOG_BYTES)
        return response.status_code, received, response.headers.get("retry-after", "")

    async def _disable(self, subscription_id: str, reason: str) -> None:
        """Disable the subscription and tell those who asked (`subscription.disabled`)."""
        subscription = await self.subscriptions.get(subscription_id)  # as it is now
        if not isinstance(subscription, Subscription) or not subscription.enabled:
            return
        disabled = changed(
            subscription, enabled=False, disabled_reason=reason, updated_at=time.time()
        )
        await self.subscriptions.save(disabled)
        log.warning(
            "subscription %s disabled: %s",
            subscription.id,
            reason,
            extra=about(subscription_id=subscription.id, reason=reason),
        )
        event = SubscriptionDisabled(
            type=OPERATIONAL,
            timestamp=now_iso(),
            data=DisabledData(
                subscription_id=subscription.id,
                # Other subscribers read this: its scheme, host and port only.
                url=origin(subscription.url),
                reason=reason,
            ),
        )
        pseudo_recording = f"subscription:{subscription.id}:{int(time.time())}"
        await self.deliveries.fan_out(pseudo_recording, OPERATIONAL, event.model_dump_json())


def _unsent(error: str | None = None) -> Attempt:
    """An attempt's record before (or instead of) a request."""
    return Attempt(at=round(time.time(), 3), error=error)


def _log(claimed: Claimed, attempt: Attempt, decision: Decision) -> None:
    """A line for an attempt that was made: debug when it succeeded, else a warning."""
    status = attempt.status_code
    if attempt.succeeded:
        log.debug(
            "delivery %s to %s: succeeded",
            claimed.msg_id,
            claimed.subscription_id,
            extra=_about(claimed, status=status),
        )
        return
    error = attempt.error or f"HTTP {status}"
    log.warning(
        "delivery %s to %s: attempt %d failed: %s",
        claimed.msg_id,
        claimed.subscription_id,
        claimed.attempts + 1,
        error,
        extra=_about(claimed, status=status, error=error),
    )
    if decision.outcome == Outcome.FAILED and decision.disable is None:
        log.info(
            "delivery %s to %s: failed, schedule spent",
            claimed.msg_id,
            claimed.subscription_id,
            extra=_about(claimed, status=status, error=error),
        )


def _about(claimed: Claimed, **more: object) -> dict[str, object]:
    """A log line's fields for an attempt at `claimed`."""
    return about(
        subscription_id=claimed.subscription_id,
        webhook_id=claimed.msg_id,
        recording_id=claimed.recording_id,
        event_type=claimed.type,
        **more,
    )


def _seconds(retry_after: str) -> float | None:
    """A `Retry-After` in seconds (an HTTP date, or anything else, is not used)."""
    try:
        seconds = float(retry_after)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86_400 * 7 else None
