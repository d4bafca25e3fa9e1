"""The `deliver` job: one webhook attempt for one delivery, and what follows from its answer.

Standard Webhooks headers, signed over the exact bytes sent with every current secret of the
subscription. Only 2xx is success. Otherwise the job defers itself along
`DELIVERY_RETRY_SCHEDULE` (with +/-20% jitter, and never sooner than a `Retry-After`), until the
schedule is spent: then the delivery is marked failed, stays visible and can be replayed.
`410 Gone` disables the subscription at once; one failing for `DELIVERY_DISABLE_AFTER` without
a success is disabled and a `subscription.disabled` event goes to those that asked for it.

A recording's messages to one subscriber go in order (only the outbox head is sent); at most
`DELIVERY_MAX_IN_FLIGHT` attempts to one subscriber run at once (`workers.slots`; the rest
park until a slot frees), so a slow or hanging one cannot hold every worker slot and delay the
others.
"""

from __future__ import annotations

import json
import logging
import random
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from arq import Retry
from arq.connections import ArqRedis
from standardwebhooks.webhooks import Webhook

from service.deliveries import Deliveries, delivery_key, failed_key, outbox_key
from service.settings import Settings
from service.ssrf import RefusedURL
from service.subscriptions import OPERATIONAL, Subscription, SubscriptionStore
from workers.slots import Slots

log = logging.getLogger("recording_relay.delivery")
BODY_LOG_BYTES = 4096


def signature_header(subscription: Subscription, msg_id: str, timestamp: int, body: str) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(
        Webhook(secret).sign(msg_id, moment, body) for secret in subscription.signing_secrets()
    )


class Deliverer:
    def __init__(
        self,
        settings: Settings,
        redis: ArqRedis,
        subscriptions: SubscriptionStore,
        deliveries: Deliveries,
        http: httpx.AsyncClient,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.subscriptions = subscriptions
        self.deliveries = deliveries
        self.http = http  # on `ssrf.guarded_transport`: it refuses inward addresses
        hold = settings.delivery_timeout + 30
        self.slots = Slots(redis, settings.delivery_max_in_flight, hold)

    async def deliver(self, subscription_id: str, msg_id: str) -> str:
        delivery = await self.deliveries.get(subscription_id, msg_id)
        if delivery is None or delivery["status"] != "pending":
            return "nothing to do"
        outbox = outbox_key(subscription_id, delivery["recording_id"])
        head = await self.redis.lindex(outbox, 0)  # type: ignore[misc]
        if head is not None and head.decode() != msg_id:
            raise Retry(defer=5)  # an earlier message goes first; its end wakes this one
        subscription = await self.subscriptions.get(subscription_id)
        if subscription is None or not subscription.enabled:
            await self._finish(delivery, "failed", "subscription disabled or deleted")
            return "failed"
        if not await self.slots.acquire(subscription_id, msg_id):
            # Parked: a freed slot wakes it; this long defer only covers a lost wake-up.
            raise Retry(defer=(self.settings.delivery_timeout + 5) * random.uniform(1, 1.2))
        try:
            attempt = await self._attempt(subscription, delivery)
        finally:
            woken = await self.slots.release(subscription_id, msg_id)
            if woken is not None:
                await self.deliveries.enqueue(subscription_id, woken)
        await self.deliveries.log_attempt(attempt)
        status = attempt["status_code"]
        key = delivery_key(subscription_id, msg_id)
        failing_since = f"rr:failing-since:{subscription_id}"
        attempts = await self.redis.hincrby(key, "attempts", 1)  # type: ignore[misc]
        if status is not None and 200 <= status < 300:
            await self.redis.delete(failing_since)
            await self._finish(delivery, "succeeded", None)
            return "succeeded"
        await self.redis.hset(key, "last_error", attempt["error"] or f"HTTP {status}")  # type: ignore[misc]
        if status == 410:
            await self._disable(subscription, "the endpoint answered 410 Gone")
            await self._finish(delivery, "failed", "410 Gone: subscription disabled")
            return "failed"
        await self.redis.set(failing_since, time.time(), nx=True)
        since = float(await self.redis.get(failing_since) or time.time())
        if time.time() - since >= self.settings.delivery_disable_after:
            await self._disable(subscription, "failing without a success for too long")
            await self._finish(delivery, "failed", "subscription disabled after failing")
            return "failed"
        schedule = self.settings.delivery_retry_schedule
        if attempts >= len(schedule):
            await self._finish(delivery, "failed", attempt["error"] or f"HTTP {status}")
            return "failed"
        delay = schedule[attempts] * random.uniform(0.8, 1.2)
        if attempt.get("retry_after") is not None:
            delay = max(delay, attempt["retry_after"])
        raise Retry(defer=delay)

    async def _attempt(
        self, subscription: Subscription, delivery: dict[str, str]
    ) -> dict[str, Any]:
        msg_id, body = delivery["msg_id"], delivery["body"]
        timestamp = int(time.time())
        record: dict[str, Any] = {
            "at": time.time(),
            "subscription_id": subscription.id,
            "recording_id": delivery["recording_id"],
            "msg_id": msg_id,
            "type": delivery["type"],
            "status_code": None,
            "latency_ms": 0.0,
            "error": None,
            "response_body": "",
        }
        headers = {
            "content-type": "application/json",
            "user-agent": "recording-relay",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(subscription, msg_id, timestamp, body),
        }
        started = time.monotonic()
        try:
            async with self.http.stream(
                "POST",
                subscription.url,
                content=body.encode(),
                headers=headers,
                timeout=self.settings.delivery_timeout,
            ) as response:
                record["status_code"] = response.status_code
                received = b""
                async for chunk in response.aiter_bytes():
                    received += chunk
                    if len(received) >= BODY_LOG_BYTES:
                        break
                record["response_body"] = received[:BODY_LOG_BYTES].decode(errors="replace")
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    record["retry_after"] = float(retry_after)
        except RefusedURL as error:  # from the guarded transport, on the address resolved
            record["error"] = f"refused: {error}"
        except httpx.TimeoutException:
            record["error"] = f"no answer within {self.settings.delivery_timeout:g} s"
        except httpx.HTTPError as error:
            record["error"] = f"{type(error).__name__}: {error}"[:300]
        record["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        return record

    async def _finish(self, delivery: dict[str, str], status: str, error: str | None) -> None:
        subscription_id, msg_id = delivery["subscription_id"], delivery["msg_id"]
        key = delivery_key(subscription_id, msg_id)
        outbox = outbox_key(subscription_id, delivery["recording_id"])
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"status": status, "finished_at": time.time()})
            if error:
                pipe.hset(key, "last_error", error)
            if status == "failed":
                pipe.zadd(failed_key(subscription_id), {key: time.time()})
            pipe.lrem(outbox, 0, msg_id)
            pipe.lindex(outbox, 0)
            results = await pipe.execute()
        following = results[-1]
        if following is not None:  # wake the recording's next message for this subscriber
            await self.deliveries.enqueue(subscription_id, following.decode())
        log.info("delivery %s to %s: %s", msg_id, subscription_id, status)

    async def _disable(self, subscription: Subscription, reason: str) -> None:
        if not subscription.enabled:
            return
        disabled = {"enabled": False, "disabled_reason": reason, "updated_at": time.time()}
        await self.subscriptions.save(subscription.model_copy(update=disabled))
        log.warning("subscription %s disabled: %s", subscription.id, reason)
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event = {
            "type": OPERATIONAL,
            "timestamp": now,
            "data": {"subscription_id": subscription.id, "url": subscription.url, "reason": reason},
        }
        pseudo_recording = f"subscription:{subscription.id}:{int(time.time())}"
        await self.deliveries.fan_out(pseudo_recording, OPERATIONAL, json.dumps(event))
