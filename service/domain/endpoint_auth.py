"""How a subscription's webhooks prove themselves to a receiver that asks for more than the
Standard Webhooks signature: HTTP Basic, an OAuth2 client-credentials token, or a client
certificate (mutual TLS), and a private CA to trust the receiver's own certificate by.

Every secret here is write-only: the API and the dashboard show each value as `"***"`
(`masked`), and nothing logs one. What is checked here is the shape; that a certificate and
its key make a pair is checked where TLS is (`service.endpoint_tls`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from service.domain.urls import check_url

MASK = "***"
PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]+-----END \1-----\s*")
Secret = Annotated[str, Field(min_length=1, max_length=2000)]
Token = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[\x21-\x7e]+$")]


def _pem(kind: str) -> Any:
    def checked(text: str) -> str:
        blocks = list(PEM.finditer(text))
        if not blocks or "".join(b.group(0) for b in blocks).strip() != text.strip():
            raise ValueError(f"must be PEM ({kind})")
        return text

    return AfterValidator(checked)


class BasicAuth(BaseModel):
    """`Authorization: Basic` with every attempt."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["basic"]
    username: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^:\x00-\x1f]+$")]
    password: Secret


class OAuth2(BaseModel):
    """OAuth2 client credentials: a token from `token_url` (asked with the client's id and
    secret as HTTP Basic, RFC 6749 2.3.1), sent as `Authorization: Bearer`, kept until it
    expires and asked for again once when the receiver answers `401`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["oauth2"]
    token_url: Annotated[str, Field(max_length=2048), AfterValidator(check_url)]
    client_id: Token
    client_secret: Secret
    scope: (
        Annotated[str, Field(max_length=1000, pattern=r"^[\x21\x23-\x5b\x5d-\x7e ]*$")] | None
    ) = None


Auth = Annotated[BasicAuth | OAuth2, Field(discriminator="type")]


class NoAuth(BaseModel):
    """`{"type": "none"}`: a change that removes the subscription's authentication."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["none"]


class ClientTLS(BaseModel):
    """Mutual TLS: the certificate (and its key) the relay presents, and the CA that signed the
    receiver's certificate when no public one did."""

    model_config = ConfigDict(extra="forbid")

    client_cert: Annotated[str, Field(max_length=20_000), _pem("a certificate")] | None = None
    client_key: Annotated[str, Field(max_length=20_000), _pem("a private key")] | None = None
    ca: Annotated[str, Field(max_length=100_000), _pem("certificates")] | None = None

    @model_validator(mode="after")
    def _paired(self) -> ClientTLS:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        return self

    @property
    def empty(self) -> bool:
        return self.client_cert is None and self.ca is None


def masked(auth: BasicAuth | OAuth2 | None, tls: ClientTLS | None) -> dict[str, Any]:
    """The authentication as answers show it: names, and `"***"` for every value of a secret
    (the client certificate and CA too: they are long, and not the caller's to read back)."""
    shown: dict[str, Any] = {"auth": None, "tls": None}
    if isinstance(auth, BasicAuth):
        shown["auth"] = {"type": "basic", "username": auth.username, "password": MASK}
    elif isinstance(auth, OAuth2):
        shown["auth"] = {**auth.model_dump(), "client_secret": MASK}
    if tls is not None:
        shown["tls"] = {name: MASK for name, value in tls.model_dump().items() if value}
    return shown
