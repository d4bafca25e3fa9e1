"""The subscriptions management API: create, read, change, rotate, delete; bad input refused."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette

from service.storage.subscriptions import SubscriptionStore
from service.web.app import create_app
from tests.support.servers import serve
from tests.support.settings import ADMIN_TOKEN, make_settings

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
async def api(redis_url: str, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(redis_url, delivery_allow_networks="127.0.0.0/8")
    async with (
        serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, headers=ADMIN) as client,
    ):
        yield client


async def test_create_read_change_delete(api: httpx.AsyncClient) -> None:
    created = await api.post("/v1/subscriptions", json={"url": HOOK, "description": "crm"})
    assert created.status_code == 201
    subscription = created.json()
    assert subscription["id"].startswith("sub_")
    assert subscription["enabled"] is True
    assert subscription["events"] == [
        "recording.completed",
        "recording.transcribed",
        "recording.failed",
        "recording.archived",
        "recording.erased",  # new subscriptions hear of erasures unless they say otherwise
    ]
    secret = subscription["secret"]
    assert secret.startswith("whsec_")
    assert 24 <= len(base64.b64decode(secret.removeprefix("whsec_"))) <= 64
    sid = subscription["id"]
    assert (await api.get(f"/v1/subscriptions/{sid}")).json() == subscription
    assert [s["id"] for s in (await api.get("/v1/subscriptions")).json()["data"]] == [sid]
    changed = await api.patch(
        f"/v1/subscriptions/{sid}", json={"events": ["recording.failed"], "enabled": False}
    )
    assert changed.status_code == 200
    assert (changed.json()["events"], changed.json()["enabled"]) == (["recording.failed"], False)
    assert changed.json()["description"] == "crm"
    assert (await api.delete(f"/v1/subscriptions/{sid}")).status_code == 204
    assert (await api.get(f"/v1/subscriptions/{sid}")).status_code == 404
    assert (await api.delete(f"/v1/subscriptions/{sid}")).status_code == 404


async def test_rotation_keeps_the_old_secret_signing_for_a_day(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await api.post("/v1/subscriptions", json={"url": HOOK})).json()["id"]
    before = (await api.get(f"/v1/subscriptions/{sid}")).json()["secret"]
    rotated = (await api.post(f"/v1/subscriptions/{sid}/rotate-secret")).json()
    assert rotated["secret"] != before
    stored = await SubscriptionStore(redis).get(sid)
    assert stored is not None
    assert stored.signing_secrets() == [rotated["secret"], before]
    assert stored.signing_secrets(now=stored.created_at + 25 * 3600) == [rotated["secret"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": HOOK, "events": ["recording.deleted"]}, "events.0"),
        ({"url": HOOK, "colour": "blue"}, "colour"),
        ({"url": HOOK, "description": 5}, "description"),
        ({"url": HOOK, "events": []}, "events"),
        ({}, "url"),
    ],
)
async def test_invalid_input_is_422_naming_the_field_and_changes_nothing(
    api: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await api.post("/v1/subscriptions", json=body)
    assert response.status_code == 422
    assert response.json()["error"].startswith(f"{field}:")
    assert (await api.get("/v1/subscriptions")).json()["data"] == []


async def test_inward_urls_are_refused_unless_admitted(redis_url: str, redis: Redis) -> None:
    settings = make_settings(redis_url)  # no DELIVERY_ALLOW_NETWORKS
    async with (
        serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, headers=ADMIN) as client,
    ):
        for target, why in [
            ("http://127.0.0.1:8080/x", "loopback"),
            ("http://10.1.2.3/x", "private"),
            ("http://169.254.169.254/latest/meta-data", "metadata"),
            ("http://[::1]/x", "loopback"),
            ("http://localhost/x", "loopback"),
        ]:
            response = await client.post("/v1/subscriptions", json={"url": target})
            assert response.status_code == 422, target
            assert why in response.json()["error"]
            assert "DELIVERY_ALLOW_NETWORKS" in response.json()["error"]
        sid = (await client.get("/v1/subscriptions")).json()["data"]
        assert sid == []


async def test_management_api_needs_the_admin_token(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/v1/subscriptions"),
        ("POST", "/v1/subscriptions"),
        ("GET", "/v1/subscriptions/sub_x"),
        ("POST", "/v1/subscriptions/sub_x/rotate-secret"),
    ]:
        response = await api.request(method, path, headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401
        assert ADMIN_TOKEN not in response.text


async def test_openapi_document_describes_the_api(api: httpx.AsyncClient) -> None:
    document = (await api.get("/v1/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    assert {"/v1/subscriptions", "/v1/subscriptions/{subscription_id}"} <= set(document["paths"])
    app = create_app(make_settings("redis://127.0.0.1:1/0"))
    while not isinstance(app, Starlette):  # the Starlette app, inside the layers around it
        app = app.app
    routes = {
        (route.path, method.lower())
        for route in app.routes
        if route.path.startswith(("/v1/", "/media/"))
        for method in route.methods - {"HEAD"}
    }
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert routes == documented  # every route, and nothing that is not one
    for path, method in documented:
        answers = document["paths"][path][method]["responses"]
        ok = [code for code in answers if code.startswith("2")]
        assert ok, (path, method)
        assert all(code == "204" or "content" in answers[code] for code in ok), (path, method)
    create = document["components"]["schemas"]["SubscriptionCreate"]
    assert create["additionalProperties"] is False
    assert set(create["properties"]) == {
        "url",
        "events",
        "description",
        "filter",
        "headers",
        "rate_limit",
        "auth",
        "tls",
    }


async def test_a_bad_filter_is_422_naming_its_place_and_a_good_one_is_kept(
    api: httpx.AsyncClient,
) -> None:
    refused = await api.post(
        "/v1/subscriptions", json={"url": HOOK, "filter": {"data.source": {"$regex": "x"}}}
    )
    assert refused.status_code == 422
    assert "filter" in refused.json()["error"] and "$regex" in refused.json()["error"]
    assert (await api.get("/v1/subscriptions")).json()["data"] == []
    spec = {"data.recording.recording_duration_ms": {"$gte": 30000}}
    created = await api.post("/v1/subscriptions", json={"url": HOOK, "filter": spec})
    assert created.status_code == 201 and created.json()["filter"] == spec
    sid = created.json()["id"]
    cleared = await api.patch(f"/v1/subscriptions/{sid}", json={"filter": {}})
    assert cleared.status_code == 200 and cleared.json()["filter"] == {}
    nulled = await api.patch(f"/v1/subscriptions/{sid}", json={"filter": None})
    assert nulled.status_code == 422 and "filter" in nulled.json()["error"]
