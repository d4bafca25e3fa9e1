"""Subscriber URLs: what the relay accepts as one, and how it shows one to anybody else.

A URL is checked as a whole before it is stored, so that what is stored is exactly what every
delivery will use: absolute `http://` or `https://`, printable ASCII only (no whitespace or
control characters anywhere; non-ASCII hosts in their punycode form), a host that is a valid
DNS name or IP literal, a port from 1 to 65535, and no credentials (`user:pass@`): a secret in
a URL ends up in logs, attempt logs and events. Where a URL is the network may go is a separate
question (`service.ssrf`).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import httpx

MAX_LENGTH = 2048
LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def check_url(url: str) -> str:
    """`url` if it is a URL webhooks can be sent to; else `ValueError` saying what is wrong."""
    if len(url) > MAX_LENGTH:
        raise ValueError(f"must be at most {MAX_LENGTH} characters")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise ValueError(
            "must be printable ASCII without spaces or control characters "
            "(percent-encode the path, write a non-ASCII host in punycode)"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"is not a valid URL ({error})") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (user:password@); use a secret in the path")
    host = parts.hostname or ""
    if port == 0:
        raise ValueError("port must be from 1 to 65535")
    _check_host(host, bracketed=parts.netloc.rpartition("@")[2].startswith("["))
    try:
        httpx.URL(url)  # what each delivery will build its request from
    except httpx.InvalidURL as error:
        raise ValueError(f"is not a valid URL ({error})") from None
    return url


def _check_host(host: str, bracketed: bool) -> None:
    if not host:
        raise ValueError("must name a host")
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"has an invalid IPv6 address {host[:60]!r}") from None
        return
    try:
        ipaddress.IPv4Address(host)
        return
    except ValueError:
        pass
    name = host.removesuffix(".")
    if len(name) > 253 or not all(LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(
            f"has an invalid host name {host[:60]!r} (labels of 1 to 63 letters, digits "
            "or hyphens, 253 characters in all)"
        )


def redacted(url: str) -> str:
    """`url` without credentials, query or fragment (the archive's URL in an event)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}"


def origin(url: str) -> str:
    """`url`'s scheme, host and port only: what other subscribers may see of a subscriber's URL
    (its path, as its query, may hold a secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
