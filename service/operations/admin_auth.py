"""The management API's and the dashboard's authentication: `Authorization: Bearer <token>`,
any of the admin tokens (`ADMIN_TOKENS`), or a separate token (`METRICS_TOKEN` for `/metrics`).

Several tokens may be in use at once, so one can be put in use and the old one retired later.
Every failed check is logged (the client's address and what it asked for, never what it
presented) and counted: an address, or everyone together, that fails too often in a minute is
refused (`Throttled`, 429) before its token is looked at (`service.storage.sessions.Throttle`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence

from pydantic import SecretStr
from starlette.requests import Request

from service.domain.problems import Throttled, Unauthorized
from service.storage.sessions import Throttle

log = logging.getLogger("recording_relay.auth")


def client_address(request: Request) -> str:
    """Where a request came from (uvicorn takes a proxy's word only from FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


def fingerprint(token: str) -> str:
    """What a session keeps of the admin token that opened it: not the token."""
    return hashlib.sha256(b"recording-relay admin token\n" + token.encode()).hexdigest()[:32]


class AdminAuth:
    """Who may use the management API, the dashboard and /metrics: the token checks and their
    throttling."""

    def __init__(self, tokens: Sequence[SecretStr], throttle: Throttle) -> None:
        self._tokens = [token.get_secret_value().encode() for token in tokens]
        self.throttle = throttle

    def matching(self, presented: str) -> str | None:
        """The fingerprint of the token `presented` is, if it is one (constant time)."""
        given = presented.strip().encode()
        found = None
        for token in self._tokens:
            if hmac.compare_digest(given, token):
                found = token
        return fingerprint(found.decode()) if found is not None else None

    def in_use(self, token_fingerprint: str) -> bool:
        """Whether the token with this fingerprint is still one of the tokens."""
        return any(fingerprint(t.decode()) == token_fingerprint for t in self._tokens)

    async def allowed(self, request: Request) -> None:
        """`Throttled` if the request's address, or everyone, has failed too often this minute."""
        wait = await self.throttle.refused(client_address(request))
        if wait is not None:
            raise Throttled("too many failed tokens: try again later", wait)

    async def failed(self, request: Request, what: str) -> None:
        address = client_address(request)
        log.warning("%s refused from %s on %s", what, address, request.url.path)
        await self.throttle.failed(address)

    async def check(self, request: Request) -> str:
        """Who the caller is, as an audit record names it (`token:` and the start of its
        token's fingerprint): `Unauthorized` unless the request carries one of the tokens;
        `Throttled` if it may not try."""
        await self.allowed(request)
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        found = self.matching(presented) if scheme.lower() == "bearer" else None
        if found is None:
            await self.failed(request, "missing or wrong bearer token")
            raise Unauthorized("missing or wrong bearer token")
        return f"token:{found[:12]}"
