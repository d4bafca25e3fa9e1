"""What an attempt carries to authenticate to its receiver (`service.domain.endpoint_auth`):
the `Authorization` header (Basic, or an OAuth2 client-credentials token) and the transport
(mutual TLS, a private CA).

OAuth2 tokens are kept in the worker's memory until 30 s before they expire, one per client
and scope, fetched by one attempt at a time (the others wait for it); a receiver's `401` drops
the token, and the attempt fetches a new one and tries once more. The token URL is reached
through the same guarded transport as webhooks: the same address rules. A transport with a
client certificate is made once per subscription's TLS settings and kept.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from dataclasses import dataclass

import httpx

from service import endpoint_tls
from service.domain.endpoint_auth import BasicAuth, ClientTLS, OAuth2
from service.domain.subscriptions import Subscription
from service.ssrf import URLGuard, guarded_transport
from workers import outbound

EARLY = 30.0  # seconds before its expiry a token is no longer used
DEFAULT_LIFE = 300.0  # a token whose endpoint gave no `expires_in`
TOKEN_BYTES = 64 * 1024  # a token endpoint's answer, at most


class AuthFailed(Exception):
    """The receiver's credentials could not be had (the token endpoint refused, or its TLS
    settings do not load): the attempt fails with this message."""


@dataclass
class _Token:
    value: str
    expires_at: float  # monotonic


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Credentials:
    """Authorization headers and transports for attempts."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        guard: URLGuard,
        limits: httpx.Limits,
        timeout: float,
    ) -> None:
        self.transport = transport  # the plain one: webhooks and token endpoints
        self.guard = guard
        self.limits = limits
        self.timeout = timeout
        self._tokens: dict[str, _Token] = {}
        self._fetching: dict[str, asyncio.Lock] = {}
        self._tls: dict[str, httpx.AsyncBaseTransport] = {}
        self.fetched = 0  # tokens fetched (bench/deliver counts them)

    def transport_for(self, subscription: Subscription) -> httpx.AsyncBaseTransport:
        """The transport to the subscriber: its own when it has TLS settings."""
        tls = subscription.tls
        if tls is None or tls.empty:
            return self.transport
        key = _fingerprint(tls)
        found = self._tls.get(key)
        if found is None:
            try:
                context = endpoint_tls.context(tls)
            except endpoint_tls.BadTLS as error:
                raise AuthFailed(f"tls: {error}") from None
            found = self._tls[key] = guarded_transport(self.guard, self.limits, context)
        return found

    async def headers_for(self, subscription: Subscription, fresh: bool = False) -> dict[str, str]:
        """The `Authorization` header its auth asks for (none without); `fresh`: a new OAuth2
        token, the receiver having refused the one kept."""
        auth = subscription.auth
        if isinstance(auth, BasicAuth):
            return {"authorization": _basic(auth.username, auth.password)}
        if isinstance(auth, OAuth2):
            return {"authorization": f"Bearer {await self.token(auth, fresh)}"}
        return {}

    async def token(self, auth: OAuth2, fresh: bool = False) -> str:
        key = _client(auth)
        lock = self._fetching.setdefault(key, asyncio.Lock())
        stale = self._tokens.get(key) if fresh else None
        async with lock:
            kept = self._tokens.get(key)
            if kept is not None and kept is not stale and kept.expires_at > time.monotonic():
                return kept.value  # (a fresh one another attempt fetched meanwhile counts)
            token = await self._fetch(auth)
            self._tokens[key] = token
            return token.value

    async def _fetch(self, auth: OAuth2) -> _Token:
        form = {"grant_type": "client_credentials", **({"scope": auth.scope} if auth.scope else {})}
        request = httpx.Request(
            "POST",
            auth.token_url,
            data=form,
            headers={
                "authorization": _basic(auth.client_id, auth.client_secret),
                "accept": "application/json",
                "user-agent": "recording-relay",
            },
            extensions={"timeout": outbound.timeouts(self.timeout)},
        )
        self.fetched += 1
        try:
            async with asyncio.timeout(self.timeout):
                response, body = await outbound.send(self.transport, request, TOKEN_BYTES + 1)
        except (httpx.HTTPError, TimeoutError, ValueError) as error:
            raise AuthFailed(f"oauth2: the token endpoint did not answer: {_said(error)}") from None
        if response.status_code != 200:
            detail = body[:200].decode(errors="replace").strip()
            raise AuthFailed(
                f"oauth2: the token endpoint answered {response.status_code}: {detail}"
            )
        try:
            answer = httpx.Response(200, content=body).json()
            value = answer["access_token"]
            life = float(answer.get("expires_in") or DEFAULT_LIFE)
        except (ValueError, KeyError, TypeError):
            raise AuthFailed("oauth2: the token endpoint's answer has no access_token") from None
        if not isinstance(value, str) or not value:
            raise AuthFailed("oauth2: the token endpoint's answer has no access_token")
        return _Token(value, time.monotonic() + max(0.0, life - EARLY))

    async def aclose(self) -> None:
        for transport in self._tls.values():
            await transport.aclose()


def _client(auth: OAuth2) -> str:
    """One token per client, secret and scope (a changed secret is a new client)."""
    parts = (auth.token_url, auth.client_id, auth.client_secret, auth.scope or "")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _fingerprint(tls: ClientTLS) -> str:
    return hashlib.sha256(tls.model_dump_json().encode()).hexdigest()


def _said(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:200]
