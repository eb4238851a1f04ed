"""What an endpoint may be (SSRF guard): an https URL (http only with WEBHOOK_ALLOW_HTTP) whose
host resolves to public addresses only (loopback, private, link-local, multicast, reserved and
other non-global ranges only with WEBHOOK_ALLOW_PRIVATE).

The check is made on the addresses DNS gives at delivery time, and the client (`client`)
connects to exactly those addresses: a name that resolves to a public address when checked and
to 127.0.0.1 a moment later (DNS rebinding) cannot get a request through, because no second
resolution happens. Redirects are not followed at all."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedEndpoint(ValueError):
    """The URL, or an address its host resolves to, is not allowed."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect and what to say."""

    scheme: str
    host: str  # the name for the Host header, TLS SNI and the certificate check
    port: int
    path: str  # path and query, as sent on the request line

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == (443 if self.scheme == "https" else 80) else f"{name}:{self.port}"


def check_url(url: str, *, allow_http: bool) -> Target:
    """The target of an endpoint URL, or RefusedEndpoint saying what is wrong with it."""
    if len(url) > 2000:
        raise RefusedEndpoint("the URL is longer than 2000 characters")
    if any(c in url for c in "\r\n\t ") or not url.isprintable():
        raise RefusedEndpoint("the URL contains spaces or control characters")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedEndpoint(f"the URL is not valid: {exc}") from None
    if parts.scheme not in ("https", "http"):
        raise RefusedEndpoint("the URL must start with https://")
    if parts.scheme == "http" and not allow_http:
        raise RefusedEndpoint("the URL must be https:// (plain http needs WEBHOOK_ALLOW_HTTP=true)")
    if not parts.hostname:
        raise RefusedEndpoint("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise RefusedEndpoint("the URL must not carry a user name or password (the signature authenticates)")
    if parts.fragment:
        raise RefusedEndpoint("the URL must not have a #fragment")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname.rstrip(".").lower(), port or (443 if parts.scheme == "https" else 80),
                  path)


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address (an IPv4-mapped IPv6 address is judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_address(address: IPAddress, *, allow_private: bool) -> None:
    if not allow_private and not is_public(address):
        raise RefusedEndpoint(f"the host resolves to {address}, a private, loopback, link-local or otherwise "
                              "non-public address (allowed only with WEBHOOK_ALLOW_PRIVATE=true)")


async def resolve(target: Target, *, allow_private: bool) -> list[str]:
    """Every address the target's host resolves to, each checked: one address that is not
    allowed refuses the endpoint (a name may not mix public and private addresses)."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        check_address(literal, allow_private=allow_private)
        return [str(literal)]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM,
                                                             proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve {target.host}: {exc.strerror or exc}") from None
    found: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        check_address(address, allow_private=allow_private)
        if str(address) not in found:
            found.append(str(address))
    if not found:
        raise ConnectionError(f"{target.host} has no address")
    return found
