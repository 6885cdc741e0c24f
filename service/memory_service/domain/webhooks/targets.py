"""Where a webhook may point: public addresses only, checked when it is saved and at every attempt.

A URL is refused when its host resolves to any address that is not public: loopback, private,
link-local (cloud metadata services live there), shared CGNAT space, multicast, unspecified,
reserved, documentation ranges, and IPv6 forms that embed such an IPv4 address (mapped, 6to4,
Teredo, NAT64). DNS can change after a webhook is saved, so the delivery worker resolves again
before each attempt, checks every address, and then connects to the address it checked (not to
the name, which could resolve differently a moment later: DNS rebinding).
`WEBHOOK_ALLOW_PRIVATE_TARGETS=true` lifts the address check (tests, closed networks).
Plain `http` is refused in production unless WEBHOOK_ALLOW_HTTP allows it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from memory_service.errors import InvalidRequest

MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Metadata services of the large clouds; most are link-local anyway, named so the error says why.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(InvalidRequest):
    """A URL the service will not send to; `reason` is short and bounded (metrics, logs)."""

    def __init__(self, message: str, reason: str, url: str | None = None) -> None:
        super().__init__(message, {"field": "url", "reason": reason} | ({"url": url} if url else {}))
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    allow_private: bool
    allow_http: bool


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """A checked URL: its host name and port, and the addresses it resolved to (all allowed)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_reason(address: IPAddress) -> str | None:
    """Why the address is not a public one (None when it is)."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:  # the IPv4 address it reaches decides
            return forbidden_reason(embedded)
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (isinstance(address, ipaddress.IPv4Address) and address in CGNAT, "a shared (CGNAT) address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for matched, reason in checks if matched), None)


def parse_url(url: str, policy: TargetPolicy) -> SplitResult:
    """The URL's parts, or 400 for anything the service does not send to (before any DNS)."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"url must be at most {MAX_URL_LENGTH} characters", "too_long")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"url is not valid: {exc}", "invalid") from exc
    if parts.scheme not in ("https", "http"):
        raise TargetRefused("url must be an https:// (or, where allowed, http://) URL", "scheme")
    if parts.scheme == "http" and not policy.allow_http:
        raise TargetRefused("url must use https (plain http is not allowed: WEBHOOK_ALLOW_HTTP)", "scheme")
    if not parts.hostname:
        raise TargetRefused("url must name a host", "invalid")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("url must not carry credentials; receivers authenticate the signature", "credentials")
    if parts.fragment:
        raise TargetRefused("url must not have a fragment", "invalid")
    if port == 0:
        raise TargetRefused("url has no valid port", "invalid")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise TargetRefused("url must not contain whitespace or control characters", "invalid")
    return parts


async def resolve(url: str, policy: TargetPolicy) -> ResolvedTarget:
    """Check the URL, resolve its host, and check every address it resolves to (callers bound
    the time: resolution can hang on a DNS server that does not answer)."""
    parts = parse_url(url, policy)
    host = str(parts.hostname)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"url host '{host}' does not resolve", "dns", url) from exc
    addresses: list[str] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not policy.allow_private:
            reason = forbidden_reason(address)
            if reason is not None:
                raise TargetRefused(f"url host '{host}' resolves to {address}, {reason}", "address", url)
        if str(address) not in addresses:
            addresses.append(str(address))
    if not addresses:
        raise TargetRefused(f"url host '{host}' does not resolve", "dns", url)
    return ResolvedTarget(url, parts.scheme, host, port, tuple(addresses))
