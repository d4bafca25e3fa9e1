"""Plivo's V3 request signatures, as its SDKs compute them.

V3 signs the public URL Plivo called plus the request's parameters and a nonce with the auth
token of the account (or subaccount) that owns the call. `X-Plivo-Signature-Ma-V3` carries the
same signature made with the main account's token. A header may carry several signatures
separated by commas; one match is enough.
"""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, urlsplit, urlunsplit

Params = Sequence[tuple[str, str]]


def _query_string(params: Iterable[tuple[str, str]]) -> str:
    # Sorting the pairs sorts by key, then a key's several values among themselves.
    return "&".join(f"{key}={value}" for key, value in sorted(params))


def _body_string(params: Iterable[tuple[str, str]]) -> str:
    return "".join(f"{key}{value}" for key, value in sorted(params))


def canonical_v3(method: str, url: str, body_params: Params = ()) -> str:
    """The string Plivo signs, before the nonce is appended.

    `url` is the public URL, query included; for GET its query holds every parameter. A fragment,
    if any, is dropped: Plivo reads it as its own retry settings and does not sign it.
    """
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    query = parse_qsl(parts.query, keep_blank_values=True)
    return canonical_v3_parts(method, base, query, body_params)


def canonical_v3_parts(method: str, base: str, query: Params, body_params: Params) -> str:
    """`canonical_v3` for a URL already split into its base (no query) and query pairs."""
    if method.upper() == "GET":
        query_string = _query_string([*query, *body_params])
        return f"{base}?{query_string}" if query_string else base
    if not body_params:
        return f"{base}?{_query_string(query)}" if query else base
    body_string = _body_string(body_params)
    if query:
        return f"{base}?{_query_string(query)}.{body_string}"
    return f"{base}?{body_string}"


def sign(token: str | bytes, canonical: str, nonce: str) -> str:
    """base64(HMAC-SHA256(token, canonical + "." + nonce))."""
    key = token.encode() if isinstance(token, str) else token
    digest = hmac.digest(key, f"{canonical}.{nonce}".encode(), "sha256")
    return binascii.b2a_base64(digest, newline=False).decode()


def sign_v3(token: str, nonce: str, method: str, url: str, body_params: Params = ()) -> str:
    """A V3 signature, as Plivo (and the sandbox) puts it in `X-Plivo-Signature-V3`."""
    return sign(token, canonical_v3(method, url, body_params), nonce)


def matches(expected: str, header: str) -> bool:
    """Whether any of the comma-separated signatures in `header` equals `expected`.

    Every candidate is compared in constant time, and all of them are compared.
    """
    wanted = expected.encode()
    found = False
    for candidate in header.split(","):
        found |= hmac.compare_digest(wanted, candidate.strip().encode())
    return found
