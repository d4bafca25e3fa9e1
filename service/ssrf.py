"""Where webhooks may go: never to loopback, private, link-local or metadata addresses.

A subscriber URL is checked when the subscription is made, and every connection a delivery
opens is checked again on the address it connects to, after DNS resolution (a name can start
pointing inward later); `guarded_transport` is the httpx transport that does it.
`DELIVERY_ALLOW_NETWORKS` admits chosen networks (the tests and the sandbox admit loopback).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import httpcore
import httpx

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)
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
        await self.resolve(parts.hostname, parts.port or 443)

    async def resolve(self, host: str, port: int) -> list[Address]:
        """`host`'s addresses, each checked; `RefusedURL` if it has none or any is refused."""
        try:
            addresses = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror:
                raise RefusedURL(f"{host} does not resolve") from None
            addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        for address in addresses:
            self.check_address(host, address)
        return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard allows.

    The address checked is the address connected to, so a name cannot resolve outward for the
    check and inward for the connection (DNS rebinding). TLS still verifies the host name.
    """

    def __init__(self, guard: URLGuard) -> None:
        self.guard = guard
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await asyncio.wait_for(self.guard.resolve(host, port), timeout)
        for address in addresses[:-1]:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError:
                continue  # the next address, as a resolver's caller would
        return await self.inner.connect_tcp(
            str(addresses[-1]), port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedURL("webhooks are never sent to a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_transport(guard: URLGuard, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through `GuardedBackend`."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(  # httpx offers no public way to set it
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(guard),
    )
    return transport
