"""Events go to subscribers as Standard Webhooks: retries, order, replay and isolation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
from standardwebhooks.webhooks import Webhook

from tests.support.pipeline_env import running_relay, subscriber
from tests.support.receivers import Receiver
from tests.support.servers import serve
from tests.support.settings import ADMIN_TOKEN
from tests.support.waiting import eventually

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EVENTS_SCHEMA = json.loads(
    (Path(__file__).parent.parent / "docs/events.v1.schema.json").read_text()
)
FAST = {"delivery_allow_networks": "127.0.0.0/8", "delivery_retry_schedule": "0,0.2,0.2"}


async def received(receiver: Receiver, count: int, within: float = 20) -> None:
    async def enough() -> bool:
        return len(receiver.got) >= count

    await eventually(enough, within=within, what=f"{count} webhooks")


async def test_events_arrive_signed_in_order(redis_url: str) -> None:
    async with running_relay(redis_url, **FAST) as relay:
        receiver = Receiver()
        async with subscriber(relay, receiver) as subscription:
            recording_id = await relay.call()
            await received(receiver, 3)
            hook = Webhook(subscription["secret"])
            payloads = [hook.verify(r.body, r.headers) for r in receiver.got]
            assert [p["type"] for p in payloads] == [
                "recording.completed",
                "recording.transcribed",
                "recording.archived",
            ]
            assert all(p["data"]["recording_id"] == recording_id for p in payloads)
            assert len({r.headers["webhook-id"] for r in receiver.got}) == 3

            async def logged() -> bool:
                status = (await relay.status(recording_id)).json()
                return [a["status_code"] for a in status["attempts"]] == [200, 200, 200]

            await eventually(logged, what="three attempts logged")
            # What was sent is the event as the relay keeps it, with a media link of its own.
            sent = json.loads(receiver.got[0].body)
            kept = (await relay.status(recording_id)).json()["events"][0]
            assert sent["data"].pop("media")["url"].startswith(f"{relay.url}/media/")
            assert kept["data"].pop("media")["format"] == "mp3"
            assert sent == kept


async def test_failures_are_retried_with_the_same_webhook_id(redis_url: str) -> None:
    async with running_relay(redis_url, **FAST) as relay:
        receiver = Receiver(answers=[500, 503, 200])
        async with subscriber(relay, receiver, events=["recording.completed"]) as subscription:
            await relay.call()
            await received(receiver, 3)
            assert len({r.headers["webhook-id"] for r in receiver.got}) == 1
            attempts: list[dict] = []

            async def all_logged() -> bool:  # the last is logged as its answer is settled
                answer = await relay.http.get(
                    f"{relay.url}/v1/subscriptions/{subscription['id']}/attempts", headers=ADMIN
                )
                attempts[:] = answer.json()["data"]
                return len(attempts) == 3

            await eventually(all_logged, what="three attempts logged")
            assert [a["status_code"] for a in attempts] == [500, 503, 200]
            assert attempts[0]["response_body"] == "answer 500"
            assert all(a["latency_ms"] >= 0 for a in attempts)


async def test_exhausted_deliveries_stay_visible_and_recover(redis_url: str) -> None:
    async with running_relay(redis_url, **FAST) as relay:
        receiver = Receiver(answers=[500])
        async with subscriber(relay, receiver, events=["recording.completed"]) as subscription:
            since = time.time()
            recording_id = await relay.call()
            await received(receiver, 3)  # the whole (shrunken) schedule

            async def logged() -> bool:
                status = (await relay.status(recording_id)).json()
                return len(status["attempts"]) == 3

            await eventually(logged, what="three attempts logged")
            receiver.answers = [200]
            response = await relay.http.post(
                f"{relay.url}/v1/subscriptions/{subscription['id']}/recover",
                json={"since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since - 1))},
                headers=ADMIN,
            )
            assert response.json() == {"queued": 1}
            await received(receiver, 4)
            assert receiver.got[3].headers["webhook-id"] == receiver.got[0].headers["webhook-id"]


async def test_410_disables_the_subscription(redis_url: str) -> None:
    async with running_relay(redis_url, **FAST) as relay:
        receiver = Receiver(answers=[410])
        async with subscriber(relay, receiver) as subscription:
            await relay.call()
            await received(receiver, 1)

            async def disabled() -> bool:
                got = await relay.http.get(
                    f"{relay.url}/v1/subscriptions/{subscription['id']}", headers=ADMIN
                )
                return got.json()["enabled"] is False

            await eventually(disabled, what="subscription disabled")
            assert len(receiver.got) == 1  # nothing more was sent to it


async def test_replay_resends_with_the_same_ids(redis_url: str) -> None:
    async with running_relay(redis_url, **FAST) as relay:
        receiver = Receiver()
        async with subscriber(relay, receiver) as subscription:
            recording_id = await relay.call()
            await received(receiver, 3)
            response = await relay.http.post(
                f"{relay.url}/v1/recordings/{recording_id}/replay",
                json={"subscription_id": subscription["id"]},
                headers=ADMIN,
            )
            assert response.status_code == 202
            assert response.json() == {"queued": 3}
            await received(receiver, 6)
            first = [r.headers["webhook-id"] for r in receiver.got[:3]]
            again = [r.headers["webhook-id"] for r in receiver.got[3:]]
            assert first == again
            bad = await relay.http.post(
                f"{relay.url}/v1/recordings/{recording_id}/replay",
                json={"subscription_id": "sub_nope"},
                headers=ADMIN,
            )
            assert bad.status_code == 422


async def test_a_hanging_subscriber_does_not_hold_up_the_others(redis_url: str) -> None:
    settings = {**FAST, "delivery_timeout": "2", "delivery_max_in_flight": "1"}
    async with running_relay(redis_url, **settings) as relay:
        stuck, healthy = Receiver(hang=True), Receiver()
        async with subscriber(relay, stuck), subscriber(relay, healthy):
            started = time.monotonic()
            for _ in range(4):
                await relay.call()
            await received(healthy, 12)  # three events each
            assert time.monotonic() - started < 2 * 4  # not queued behind the hanging one


async def test_long_failing_subscription_is_disabled_with_an_operational_event(
    redis_url: str,
) -> None:
    settings = {**FAST, "delivery_retry_schedule": "0,0.3,0.3,0.3", "delivery_disable_after": "0.5"}
    async with running_relay(redis_url, **settings) as relay:
        failing, watcher = Receiver(answers=[500]), Receiver()
        async with (
            subscriber(
                relay, failing, query="?api_key=s3cret", events=["recording.completed"]
            ) as broken,
            subscriber(relay, watcher, events=["subscription.disabled"]) as operator,
        ):
            await relay.call()
            await received(watcher, 1)
            notice = Webhook(operator["secret"]).verify(watcher.got[0].body, watcher.got[0].headers)
            assert notice["type"] == "subscription.disabled"
            assert notice["data"]["subscription_id"] == broken["id"]
            # Other subscribers see where it pointed, never the secrets in its URL.
            # Other subscribers see where it was, not its path or query (either may hold a secret).
            assert notice["data"]["url"] == broken["url"].split("/hook")[0]
            assert b"s3cret" not in watcher.got[0].body
            assert EVENTS_SCHEMA["$schema"].startswith("https://json-schema.org/")
            jsonschema.validate(notice, EVENTS_SCHEMA)  # the published schema covers it
            state = await relay.http.get(
                f"{relay.url}/v1/subscriptions/{broken['id']}", headers=ADMIN
            )
            assert state.json()["enabled"] is False
            assert "failing" in state.json()["disabled_reason"]


async def test_an_inward_address_is_refused_at_delivery_after_dns(redis_url: str) -> None:
    async with running_relay(redis_url, worker=False, **FAST) as relay:
        receiver = Receiver()
        async with serve(receiver.app()) as url:
            # Admitted when it was made; the workers no longer admit loopback.
            hook = url.replace("127.0.0.1", "localhost") + "/hook"
            await relay.subscribe(hook)
            relay.settings = relay.settings.model_copy(update={"delivery_allow_networks": ()})
            relay.start_worker()
            recording_id = await relay.call()

            async def refused() -> bool:
                attempts = (await relay.status(recording_id)).json()["attempts"]
                return bool(attempts) and "refused" in str(attempts[0]["error"])

            await eventually(refused, what="a refused attempt")
            attempt = (await relay.status(recording_id)).json()["attempts"][0]
            assert "localhost resolves to" in attempt["error"]
            assert "loopback" in attempt["error"]
            assert attempt["status_code"] is None
            assert receiver.got == []


async def test_a_filter_on_content_keeps_what_does_not_match_from_its_subscriber(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, **FAST) as relay:
        everything, backfills_only, transcribed_only = Receiver(), Receiver(), Receiver()
        only_backfills = {"data.source": "backfill"}
        only_transcribed = {
            "$and": [{"type": "recording.transcribed"}, {"data.source": "callback"}]
        }
        async with (
            subscriber(relay, everything),
            subscriber(relay, backfills_only, filter=only_backfills) as filtered_out,
            subscriber(relay, transcribed_only, filter=only_transcribed),
        ):
            recording_id = await relay.call()
            await received(everything, 3)
            await received(transcribed_only, 1)
            assert (await relay.settled(recording_id))["status"] == "transcribed"
            types = [json.loads(r.body)["type"] for r in transcribed_only.got]
            assert types == ["recording.transcribed"]
            assert backfills_only.got == []
            log = await relay.http.get(
                f"{relay.url}/v1/subscriptions/{filtered_out['id']}/attempts", headers=ADMIN
            )
            assert log.json()["data"] == []  # nothing queued or attempted for it


async def test_a_subscriptions_headers_go_with_every_attempt_and_are_never_shown(
    redis_url: str,
) -> None:
    async with running_relay(redis_url, **FAST) as relay:
        receiver = Receiver()
        secret_key = "k-" + "7" * 30
        async with subscriber(relay, receiver, headers={"X-Api-Key": secret_key}) as created:
            assert created["headers"] == {"X-Api-Key": "***"}
            await relay.call()
            await received(receiver, 3)
            assert {r.headers["x-api-key"] for r in receiver.got} == {secret_key}
            assert all(r.headers["webhook-id"].startswith("msg_") for r in receiver.got)
            url = f"{relay.url}/v1/subscriptions"
            shown = [
                (await relay.http.get(f"{url}/{created['id']}", headers=ADMIN)).text,
                (await relay.http.get(url, headers=ADMIN)).text,
            ]
            assert all(
                secret_key not in text and '"X-Api-Key":"***"' in text.replace(" ", "")
                for text in shown
            )
            for bad, named in [
                ({"Webhook-Signature": "x"}, "the relay's to send"),
                ({"X-Api-Key": "a\r\nInjected: 1"}, "no control characters"),
                ({"Bad Name": "x"}, "is not a header name"),
            ]:
                refused = await relay.http.post(
                    url, json={"url": "http://127.0.0.1:9/h", "headers": bad}, headers=ADMIN
                )
                assert refused.status_code == 422 and named in refused.json()["error"], refused.text
                assert "Injected" not in refused.text
