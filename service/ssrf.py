"""Where webhooks may go: only to globally routable addresses.

Loopback, private, link-local, shared (CGNAT), metadata, documentation, multicast and every
other special-purpose range are refused, and so is an IPv6 address that wraps one of them
(IPv4-mapped, 6to4, Teredo, NAT64).

A subscriber URL is checked when the subscription is made, and every connection a delivery
opens is checked again on the address it connects to, after DNS resolution (a name can start
pointing inward later); `guarded_transport` is the httpx transport that does it.
`DELIVERY_ALLOW_NETWORKS` admits chosen networks (the tests and the sandbox admit loopback).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from urllib.parse import urlsplit

import httpcore
import httpx

from service.domain.urls import check_url

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA = (
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("192.0.0.192"),
)
SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)
# IANA's special-purpose ranges that are not globally reachable. `ipaddress`'s `is_global`
# misses some of them in older Pythons (100.64.0.0/10 is only half-handled, 192.0.0.0/24 and
# 2002::/16 not at all in 3.11.7), so the relay names them itself.
NOT_GLOBAL = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24",
        "192.88.99.0/24", "192.168.0.0/16", "192.175.48.0/24", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "::/96", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64",
        "2001::/23", "2001:db8::/32", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10",
        "fec0::/10", "ff00::/8",
    )
)  # fmt: skip
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedURL(ValueError):
    """A subscriber URL the relay will not send to; the message says why."""


def embedded(address: Address) -> list[Address]:
    """`address` and every IPv4 address an IPv6 one carries and would reach (IPv4-mapped,
    IPv4-compatible, 6to4, Teredo, NAT64)."""
    found: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        packed = int(address)
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found.extend(address.teredo)
        if address in NAT64 or packed >> 32 == 0:  # NAT64, or IPv4-compatible `::a.b.c.d`
            found.append(ipaddress.IPv4Address(packed & 0xFFFFFFFF))
    return found


def _forbidden(address: Address) -> str | None:
    """Why `address` is no place for a webhook, or None if it is globally routable."""
    for inner in embedded(address):
        if inner in METADATA:
            return "a cloud metadata address"
        if inner.is_loopback:
            return "a loopback address"
        if inner.is_link_local:
            return "a link-local address"
        if inner.is_private and not inner.is_global:
            return "a private address"
        if not inner.is_global or any(inner in network for network in NOT_GLOBAL):
            return "not a globally routable address"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """`host`'s addresses as the system resolves them."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class URLGuard:
    """`resolve` is the seam for DNS (tests that must not query any resolver give their own)."""

    def __init__(
        self,
        allowed: Sequence[Network] = (),
        resolve: Callable[[str, int], Awaitable[list[str]]] = system_resolver,
    ) -> None:
        self.allowed = tuple(allowed)
        self._resolve = resolve

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
        try:
            parts = urlsplit(check_url(url))
        except ValueError as error:
            raise RefusedURL(str(error)) from None
        default_port = 443 if parts.scheme == "https" else 80
        await self.resolve(parts.hostname or "", parts.port or default_port)

    async def resolve(self, host: str, port: int) -> list[Address]:
        """`host`'s addresses, each checked; `RefusedURL` if it has none or any is refused."""
        addresses = await self._addresses(host, port)
        if not addresses:
            raise RefusedURL(f"{host[:60]!r} does not resolve")
        for address in addresses:
            self.check_address(host, address)
        return addresses

    async def _addresses(self, host: str, port: int) -> list[Address]:
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass
        try:
            found = await self._resolve(host, port)
        except (OSError, UnicodeError):
            return []
        return list(dict.fromkeys(ipaddress.ip_address(a) for a in found))


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


def guarded_transport(
    guard: URLGuard, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through `GuardedBackend` (with
    `ssl_context`: a receiver's mutual TLS, `service.endpoint_tls`)."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(  # httpx offers no public way to set it
        ssl_context=ssl_context or httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(guard),
    )
    return transport
