"""Stored input never breaks the pipeline: what the API stores always parses, a record that
does not is skipped and reported, any error while attempting a webhook settles as a failed
attempt, and deleting a subscription leaves nothing behind."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from service.domain.media_links import MediaLinks
from service.domain.subscriptions import SubscriptionCreate
from service.metrics import Recorder
from service.ssrf import RefusedURL, URLGuard
from service.storage.deliveries import Deliveries, DeliveryQueue
from service.storage.keyring import Keyring
from service.storage.keys import SUBSCRIPTIONS as KEY
from service.storage.metrics import MetricsStore
from service.storage.subscriptions import SubscriptionStore
from service.web.app import create_app
from tests.support.pipeline_env import running_relay
from tests.support.receivers import Receiver
from tests.support.servers import serve
from tests.support.settings import ADMIN_TOKEN, make_settings
from tests.support.waiting import eventually
from workers.delivery import Deliverer
from workers.endpoint_auth import Credentials

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
async def api(redis_url: str, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        redis_url, delivery_allow_networks="127.0.0.0/8", subscriptions_max="3"
    )
    async with (
        serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, headers=ADMIN) as client,
    ):
        yield client


@pytest.mark.parametrize("field", ["url", "events", "description", "enabled"])
async def test_patching_a_field_to_null_is_422_and_changes_nothing(
    api: httpx.AsyncClient, field: str
) -> None:
    created = (await api.post("/v1/subscriptions", json={"url": HOOK})).json()
    response = await api.patch(f"/v1/subscriptions/{created['id']}", json={field: None})
    assert response.status_code == 422
    assert response.json()["error"].startswith(f"{field}:")
    assert (await api.get(f"/v1/subscriptions/{created['id']}")).json() == created
    listed = await api.get("/v1/subscriptions")
    assert listed.status_code == 200 and listed.json()["data"] == [created]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook\r\nX-Injected: 1",
        "http://127.0.0.1:9/ho\tok",
        "http://127.0.0.1:9/hook\x00",
        "http://h:99999/",
        "http://h:abc/",
        "http://h:0/",
        "http://[127.0.0.2]/",
        "http://[::1/",
        f"http://{'a' * 64}.example.com/",
        "http://exämple.com/",
        "http://exa\x7fmple.com/",
        "http://user:pass@127.0.0.1:9/hook",
        "http:///nohost",
        "https://",
        "http://a..b/",
    ],
)
async def test_malformed_urls_are_422_naming_the_url(api: httpx.AsyncClient, url: str) -> None:
    response = await api.post("/v1/subscriptions", json={"url": url})
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("url:")
    created = (await api.post("/v1/subscriptions", json={"url": HOOK})).json()
    patched = await api.patch(f"/v1/subscriptions/{created['id']}", json={"url": url})
    assert patched.status_code == 422 and patched.json()["error"].startswith("url:")
    assert [s["url"] for s in (await api.get("/v1/subscriptions")).json()["data"]] == [HOOK]


async def test_the_number_of_subscriptions_is_capped_and_lists_are_paged(
    api: httpx.AsyncClient,
) -> None:
    ids = [(await api.post("/v1/subscriptions", json={"url": HOOK})).json()["id"] for _ in "abc"]
    refused = await api.post("/v1/subscriptions", json={"url": HOOK})
    assert refused.status_code == 409 and "SUBSCRIPTIONS_MAX" in refused.json()["error"]
    first = (await api.get("/v1/subscriptions", params={"limit": 2})).json()
    assert [s["id"] for s in first["data"]] == ids[:2]
    second = (
        await api.get("/v1/subscriptions", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert ([s["id"] for s in second["data"]], second["next_cursor"]) == (ids[2:], None)
    for params, field in [
        ({"limit": 0}, "limit"),
        ({"limit": "²"}, "limit"),
        ({"cursor": "x"}, "cursor"),
    ]:
        bad = await api.get("/v1/subscriptions", params=params)
        assert bad.status_code == 422 and bad.json()["error"].startswith(f"{field}:")
        attempts = await api.get(f"/v1/subscriptions/{ids[0]}/attempts", params=params)
        assert attempts.status_code == 422


async def test_an_unreadable_record_is_reported_skipped_and_deletable(
    redis_url: str, redis: Redis
) -> None:
    admit = "127.0.0.0/8"
    async with running_relay(redis_url, delivery_allow_networks=admit) as relay:
        receiver = Receiver()
        async with serve(receiver.app()) as url:
            good = await relay.subscribe(f"{url}/hook")
            broken = json.dumps({"id": "sub_broken", "url": "http://x/\r\n", "description": None})
            await redis.hset(KEY, "sub_broken", broken)  # as by hand, or an older version
            listed = await relay.http.get(f"{relay.url}/v1/subscriptions", headers=ADMIN)
            assert listed.status_code == 200
            assert [s["id"] for s in listed.json()["data"]] == [good["id"]]
            assert [u["id"] for u in listed.json()["unreadable"]] == ["sub_broken"]
            shown = await relay.http.get(f"{relay.url}/v1/subscriptions/sub_broken", headers=ADMIN)
            assert shown.status_code == 409 and "unreadable" in shown.json()["error"]

            recording_id = await relay.call()  # the pipeline and the good subscriber go on
            assert (await relay.settled(recording_id))["status"] == "transcribed"

            async def delivered() -> bool:
                return len(receiver.got) >= 3

            await eventually(delivered, what="the three webhooks to the good subscriber")
            assert len(receiver.got) == 3
            deleted = await relay.http.delete(
                f"{relay.url}/v1/subscriptions/sub_broken", headers=ADMIN
            )
            assert deleted.status_code == 204
            listed = await relay.http.get(f"{relay.url}/v1/subscriptions", headers=ADMIN)
            assert listed.json()["unreadable"] == []


class Exploding(httpx.AsyncBaseTransport):
    """A transport failing in a way no HTTP library names."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("something nobody expected")


async def deliverer(redis: Redis, settings_url: str, transport: httpx.AsyncBaseTransport):
    settings = make_settings(settings_url, delivery_retry_schedule="0,60,60")
    subscriptions = SubscriptionStore(redis)
    deliveries = Deliveries(redis, subscriptions)
    queue = DeliveryQueue(redis, 4, holder="worker.1:100", lapse=60, retention=3600)
    metrics = Recorder(MetricsStore(redis))
    links = MediaLinks(settings, Keyring(redis))
    credentials = Credentials(transport, URLGuard(()), httpx.Limits(), 5.0)
    return Deliverer(settings, subscriptions, deliveries, queue, credentials, metrics, links), queue


async def test_any_error_while_attempting_settles_as_a_failed_attempt(
    redis: Redis, redis_url: str
) -> None:
    sending, queue = await deliverer(redis, redis_url, Exploding())
    sub = await sending.subscriptions.create(SubscriptionCreate(url="https://example.com/h"))
    await sending.deliveries.fan_out("rec-1", "recording.completed", "{}")
    [claimed] = (await queue.claim(10)).taken
    assert (await sending.deliver(claimed)).outcome == "retry"
    log, total = await sending.deliveries.attempts(sub.id)
    assert total == 1 and "RuntimeError: something nobody expected" in (log[0].error or "")
    assert await sending.deliveries.failing_since(sub.id)  # it counts towards disabling
    assert (await queue.claim(10)).taken == []  # due again later, not at every lease


async def test_deleting_a_subscription_deletes_its_logs_and_drops_what_was_queued(
    redis: Redis, redis_url: str
) -> None:
    sending, queue = await deliverer(redis, redis_url, Exploding())
    store = sending.subscriptions
    sub = await store.create(SubscriptionCreate(url="https://example.com/h"))
    await sending.deliveries.fan_out("rec-1", "recording.completed", "{}")
    await sending.deliveries.fan_out("rec-2", "recording.completed", "{}")
    await sending.deliveries.fan_out("rec-3", "recording.completed", "{}")
    [first, in_flight, _] = (await queue.claim(10)).taken
    await sending.deliver(first)  # a failed attempt: due again later
    left = [f"rr:{kind}:{sub.id}" for kind in ("attempts", "pending", "queue")]
    assert await redis.exists(*left) == 3
    assert (await sending.deliveries.attempts(sub.id))[1] == 1
    async with (  # deleted through the API, as an operator would
        serve(create_app(make_settings(redis_url))) as url,
        httpx.AsyncClient(base_url=url, headers=ADMIN) as client,
    ):
        assert (await client.delete(f"/v1/subscriptions/{sub.id}")).status_code == 204
    assert await redis.exists(*left) == 0  # what it had queued is dropped at once
    assert await redis.keys("rr:body:*") == []  # and the bodies only it was owed
    await sending.deliver(in_flight)  # an attempt that was in flight when it was deleted
    assert await redis.exists(*left) == 0  # nothing of it comes back
    assert (await queue.claim(10)).taken == []
    assert await redis.zcard("rr:deliveries:due") == 0


@pytest.mark.parametrize(
    "address",
    [
        "100.100.100.200",  # a cloud metadata address in the shared (CGNAT) range
        "100.64.0.1",
        "192.0.0.192",
        "192.0.2.1",
        "198.18.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "240.0.0.1",
        "169.254.169.254",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "2002:7f00:1::",  # 6to4 wrapping 127.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 wrapping 169.254.169.254
        "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo to 127.0.0.1
        "fd00:ec2::254",
        "fe80::1",
        "fc00::1",
        "2001:db8::1",
        "::",
        "::1",
    ],
)
def test_the_guard_refuses_every_address_that_is_not_globally_routable(address: str) -> None:
    guard = URLGuard()
    with pytest.raises(RefusedURL, match="DELIVERY_ALLOW_NETWORKS"):
        guard.check_address("host", ipaddress.ip_address(address))


def test_the_guard_admits_public_addresses_and_the_networks_it_is_told() -> None:
    guard = URLGuard([ipaddress.ip_network("100.64.0.0/10")])
    for address in ("8.8.8.8", "2606:4700:4700::1111", "100.100.100.200"):
        guard.check_address("host", ipaddress.ip_address(address))
