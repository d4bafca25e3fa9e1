"""`python -m sandbox.receiver`: the subscriber `make run` starts, printing each webhook it
verifies (Standard Webhooks, the subscription's secret), so the printed subscribe step has
somewhere to deliver to.

It learns the secrets from the relay it serves: when a webhook does not verify with those it
knows, it reads the relay's subscriptions to this URL (`GET /v1/subscriptions`, with the admin
token) and tries again. A webhook that still does not verify is answered 401 and printed as
refused. Loopback only: a local tool, not a production receiver.

Environment: `RECEIVER_PORT` (default 9000), `RELAY_URL` (the relay's base URL) and
`ADMIN_TOKEN`.
"""

from __future__ import annotations

import json
import os
import sys

import httpx
import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PATH = "/hook"


class Receiver:
    def __init__(self, own_url: str, relay_url: str, admin_token: str) -> None:
        self.own_url = own_url
        self.relay_url = relay_url.rstrip("/")
        self.admin_token = admin_token
        self.secrets: list[str] = []

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        headers = {name: value for name, value in request.headers.items()}
        verified = self._verify(body, headers)
        if verified is None:
            self.secrets = await self._subscribed_secrets()
            verified = self._verify(body, headers)
        if verified is None:
            print("receiver: refused a webhook: its signature does not verify", flush=True)
            return Response("signature does not verify", status_code=401)
        data = verified.get("data")
        about = " ".join(
            f"{name}={data[name]}"
            for name in ("recording_id", "status")
            if isinstance(data, dict) and data.get(name)
        )
        print(f"verified {verified.get('type')} {about}".rstrip(), flush=True)
        return Response(status_code=204)

    def _verify(self, body: bytes, headers: dict[str, str]) -> dict[str, object] | None:
        for secret in self.secrets:
            try:
                event = Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            return event if isinstance(event, dict) else json.loads(body)
        return None

    async def _subscribed_secrets(self) -> list[str]:
        """The secrets of the relay's subscriptions that deliver here."""
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                answer = await http.get(f"{self.relay_url}/v1/subscriptions", headers=headers)
                answer.raise_for_status()
        except httpx.HTTPError as error:
            print(f"receiver: the relay's subscriptions unreadable ({error})", flush=True)
            return self.secrets
        return [s["secret"] for s in answer.json()["data"] if s["url"] == self.own_url]


def create_receiver(own_url: str, relay_url: str, admin_token: str) -> Starlette:
    receiver = Receiver(own_url, relay_url, admin_token)
    return Starlette(routes=[Route(PATH, receiver.hook, methods=["POST"])])


def main() -> None:
    port = int(os.environ.get("RECEIVER_PORT", "9000"))
    relay_url, token = os.environ.get("RELAY_URL"), os.environ.get("ADMIN_TOKEN")
    if not relay_url or not token:
        sys.exit("receiver: RELAY_URL and ADMIN_TOKEN are required")
    app = create_receiver(f"http://127.0.0.1:{port}{PATH}", relay_url, token)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
