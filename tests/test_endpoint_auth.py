"""Receivers that ask for more than the signature, real ones on loopback: one behind HTTP Basic,
a resource server that takes OAuth2 client-credentials tokens from a token endpoint, and an
HTTPS server that requires a client certificate from a private CA. Secrets are write-only."""

from __future__ import annotations

import base64
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.certificates import authority
from tests.support.pipeline_env import Relay, running_relay
from tests.support.servers import serve
from tests.support.settings import ADMIN_TOKEN
from tests.support.waiting import eventually
from tests.test_delivery import FAST

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Protected:
    """A receiver that takes a webhook only with the right `Authorization` (401 otherwise),
    and an OAuth2 token endpoint (client credentials) that issues what it takes."""

    basic: str = ""  # the one Basic credential it takes ('' for none)
    client: tuple[str, str] = ("", "")  # the OAuth2 client it issues tokens to
    tokens: set[str] = field(default_factory=set)  # tokens it takes
    issued: int = 0
    taken: list[str] = field(default_factory=list)  # the webhook ids it took
    refused: int = 0

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            ok = (scheme == "Basic" and self.basic and value == self.basic) or (
                scheme == "Bearer" and value in self.tokens
            )
            if not ok:
                self.refused += 1
                return Response("who are you?", status_code=401)
            self.taken.append(request.headers["webhook-id"])
            return Response("ok")

        async def token(request: Request) -> Response:
            expected = base64.b64encode(":".join(self.client).encode()).decode()
            form = await request.form()
            if request.headers.get("authorization") != f"Basic {expected}":
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            if form.get("grant_type") != "client_credentials" or form.get("scope") != "hooks":
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            self.issued += 1
            issued = secrets.token_urlsafe(16)
            self.tokens.add(issued)
            return JSONResponse(
                {"access_token": issued, "token_type": "Bearer", "expires_in": 3600}
            )

        return Starlette(
            routes=[
                Route("/hook", hook, methods=["POST"]),
                Route("/token", token, methods=["POST"]),
            ]
        )


async def attempts(relay: Relay, subscription_id: str) -> list[dict[str, Any]]:
    answer = await relay.http.get(
        f"{relay.url}/v1/subscriptions/{subscription_id}/attempts", headers=AUTH
    )
    found: list[dict[str, Any]] = answer.json()["data"]
    return found


async def test_a_receiver_behind_basic_gets_its_webhooks_and_the_password_is_never_shown(
    redis_url: str,
) -> None:
    receiver = Protected(basic=base64.b64encode(b"relay:s3cret-pass").decode())
    async with running_relay(redis_url, **FAST) as relay, serve(receiver.app()) as url:
        auth = {"type": "basic", "username": "relay", "password": "s3cret-pass"}
        made = await relay.subscribe(f"{url}/hook", events=["recording.completed"], auth=auth)
        assert made["auth"] == {"type": "basic", "username": "relay", "password": "***"}
        shown = await relay.http.get(f"{relay.url}/v1/subscriptions/{made['id']}", headers=AUTH)
        assert "s3cret-pass" not in shown.text
        await relay.call()

        async def taken() -> bool:
            return len(receiver.taken) == 1

        await eventually(taken, what="the webhook past Basic")
        assert receiver.refused == 0


async def test_oauth2_tokens_are_fetched_once_kept_and_fetched_again_on_a_401(
    redis_url: str,
) -> None:
    receiver = Protected(client=("relay-client", "client-secret-1"))
    async with running_relay(redis_url, **FAST) as relay, serve(receiver.app()) as url:
        auth = {
            "type": "oauth2",
            "token_url": f"{url}/token",
            "client_id": "relay-client",
            "client_secret": "client-secret-1",
            "scope": "hooks",
        }
        made = await relay.subscribe(f"{url}/hook", auth=auth)
        assert made["auth"]["client_secret"] == "***"
        assert made["auth"]["token_url"] == f"{url}/token"
        for _ in range(2):
            await relay.call()

        async def six() -> bool:
            return len(receiver.taken) == 6

        await eventually(six, what="six webhooks with a bearer token")
        assert receiver.issued == 1  # one token, kept for all of them
        receiver.tokens.clear()  # revoked: the next webhook is answered 401 once
        await relay.call()

        async def nine() -> bool:
            return len(receiver.taken) == 9

        await eventually(nine, what="the webhooks after the token was revoked")
        assert receiver.issued == 2
        assert receiver.refused == 1

        # A wrong secret: each attempt fails, saying why, and follows the retry rules.
        changed = await relay.http.patch(
            f"{relay.url}/v1/subscriptions/{made['id']}",
            json={"auth": {**auth, "client_secret": "wrong"}},
            headers=AUTH,
        )
        assert changed.status_code == 200, changed.text
        await relay.call()

        async def refused() -> bool:
            return any(
                "token endpoint answered 401" in (a["error"] or "")
                for a in await attempts(relay, made["id"])
            )

        await eventually(refused, what="an attempt failed for want of a token")
        log = await attempts(relay, made["id"])
        assert all("wrong" not in str(a) and "client-secret" not in str(a) for a in log)


async def test_mutual_tls_to_a_receiver_that_a_private_ca_certifies(redis_url: str) -> None:
    ca = authority()
    stranger = authority("another CA")  # its client certificate the receiver does not trust
    receiver = Protected(basic=base64.b64encode(b"u:p").decode())
    folder = Path(tempfile.mkdtemp(prefix="relay-tls-"))
    async with (
        running_relay(redis_url, **FAST) as relay,
        serve(receiver.app(), tls=ca.files(folder)) as url,
    ):
        assert url.startswith("https://")
        basic = {"type": "basic", "username": "u", "password": "p"}
        tls = {"client_cert": ca.client.cert, "client_key": ca.client.key, "ca": ca.ca}
        made = await relay.subscribe(
            f"{url}/hook", events=["recording.completed"], auth=basic, tls=tls
        )
        assert made["tls"] == {"client_cert": "***", "client_key": "***", "ca": "***"}
        wrong = {
            "client_cert": stranger.client.cert,
            "client_key": stranger.client.key,
            "ca": ca.ca,
        }
        refused = await relay.subscribe(
            f"{url}/hook", events=["recording.completed"], auth=basic, tls=wrong
        )
        await relay.call()

        async def delivered() -> bool:
            return len(receiver.taken) == 1

        await eventually(delivered, what="the webhook over mutual TLS")

        async def failed() -> bool:
            return any(a["error"] for a in await attempts(relay, refused["id"]))

        await eventually(failed, what="the attempt with a certificate the receiver refuses")
        [first, *_] = await attempts(relay, refused["id"])
        assert first["status_code"] is None and "Error" in first["error"]
        assert len(receiver.taken) == 1


async def test_bad_authentication_is_refused_by_name_and_changes_nothing(redis_url: str) -> None:
    ca = authority()
    other = authority()
    async with (
        running_relay(redis_url, worker=False, **FAST) as relay,
        httpx.AsyncClient(base_url=relay.url, headers=AUTH) as api,
    ):
        hook = "http://127.0.0.1:9/hook"
        cases: list[tuple[dict[str, Any], str]] = [
            (
                {"auth": {"type": "basic", "username": "a:b", "password": "p"}},
                "auth.basic.username",
            ),
            ({"auth": {"type": "basic", "username": "a"}}, "password"),
            ({"auth": {"type": "digest"}}, "auth"),
            (
                {
                    "auth": {
                        "type": "oauth2",
                        "token_url": "http://10.1.2.3/token",
                        "client_id": "c",
                        "client_secret": "s",
                    }
                },
                "auth.token_url",
            ),
            ({"tls": {"client_cert": ca.client.cert}}, "client_key"),
            ({"tls": {"client_cert": "not a pem", "client_key": ca.client.key}}, "PEM"),
            ({"tls": {"client_cert": ca.client.cert, "client_key": other.client.key}}, "tls"),
            (
                {
                    "headers": {"Authorization": "x"},
                    "auth": {"type": "basic", "username": "a", "password": "p"},
                },
                "Authorization",
            ),
        ]
        for extra, named in cases:
            refused = await api.post("/v1/subscriptions", json={"url": hook, **extra})
            assert refused.status_code == 422, (extra, refused.text)
            assert named in refused.json()["error"], (named, refused.text)
            assert "s3cret" not in refused.text
        assert (await api.get("/v1/subscriptions")).json()["data"] == []
        # Removing them: {"type": "none"} and {}.
        made = await api.post(
            "/v1/subscriptions",
            json={
                "url": hook,
                "auth": {"type": "basic", "username": "a", "password": "p"},
                "tls": {"ca": ca.ca},
            },
        )
        assert made.status_code == 201, made.text
        sid = made.json()["id"]
        cleared = await api.patch(
            f"/v1/subscriptions/{sid}", json={"auth": {"type": "none"}, "tls": {}}
        )
        assert cleared.status_code == 200, cleared.text
        assert cleared.json()["auth"] is None and cleared.json()["tls"] is None
