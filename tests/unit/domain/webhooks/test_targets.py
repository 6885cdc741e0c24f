"""Webhook targets: which addresses are refused, and what a URL must look like (no network: only
literal addresses and `localhost` are resolved)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from memory_service.domain.webhooks.targets import TargetPolicy, TargetRefused, forbidden_reason, parse_url, resolve

STRICT = TargetPolicy(allow_private=False, allow_http=False)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.31.255.1", "private"),
        ("192.168.0.1", "private"),
        ("fd12::1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.100.100.200", "cloud metadata"),
        ("100.64.0.1", "CGNAT"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("192.0.2.10", "private"),  # documentation range
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("fd00:ec2::254", "cloud metadata"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    found = forbidden_reason(ipaddress.ip_address(address))
    assert found is not None
    assert reason in found


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::5db8:d822"])
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hook", "scheme"),
        ("ftp://example.com/hook", "scheme"),
        ("example.com/hook", "scheme"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://example.com/hook#part", "invalid"),
        ("https:///hook", "invalid"),
        ("https://example.com:99999/", "invalid"),
        ("https://example.com/a b", "invalid"),
        ("https://example.com/" + "a" * 2100, "too_long"),
    ],
)
def test_malformed_or_plain_http_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        parse_url(url, STRICT)
    assert refused.value.reason == reason
    assert refused.value.status_code == 400


def test_plain_http_where_allowed() -> None:
    assert parse_url("http://example.com:8080/hook", TargetPolicy(False, True)).port == 8080


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1/", "https://localhost:8443/", "https://[::1]/", "https://2130706433/"]
)
def test_resolution_checks_every_address(url: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        asyncio.run(resolve(url, STRICT))
    assert refused.value.reason == "address"
    assert "loopback" in refused.value.message


def test_private_targets_when_allowed() -> None:
    target = asyncio.run(resolve("http://localhost:9/hook", TargetPolicy(True, True)))
    assert target.host == "localhost"
    assert target.port == 9
    assert "127.0.0.1" in target.addresses or "::1" in target.addresses
