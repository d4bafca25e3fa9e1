"""Where webhooks may go: never to loopback, private, link-local or metadata addresses.

A subscriber URL is checked when the subscription is made and again, after DNS resolution,
before each delivery (a name can start pointing inward later). `DELIVERY_ALLOW_NETWORKS`
admits chosen networks (the tests and the sandbox admit loopback).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))


class RefusedURL(ValueError):
    """A subscriber URL the relay will not send to; the message says why."""


def _forbidden(address: Address) -> str | None:
    if address in METADATA:
        return "a cloud metadata address"
    for test, what in (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_private, "a private address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_reserved, "a reserved address"),
    ):
        if test:
            return what
    return None


class URLGuard:
    def __init__(self, allowed: Sequence[Network] = ()) -> None:
        self.allowed = tuple(allowed)

    def check_address(self, host: str, address: Address) -> None:
        if any(address in network for network in self.allowed):
            return
        reason = _forbidden(address)
        if reason is not None:
            raise RefusedURL(
                f"{host} resolves to {address}, {reason}; admit it with DELIVERY_ALLOW_NETWORKS"
            )

    async def check(self, url: str) -> None:
        """Raise `RefusedURL` unless `url` is http(s) to a host whose every address is allowed."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RefusedURL("must be an absolute http:// or https:// URL")
        host = parts.hostname
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            self.check_address(host, literal)
            return
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise RefusedURL(f"{host} does not resolve") from None
        for info in infos:
            self.check_address(host, ipaddress.ip_address(info[4][0]))
