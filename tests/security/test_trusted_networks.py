"""MIFUMO_TRUSTED_PROXIES is read strictly (a malformed entry stops the start, named), and the
forwarded headers count only on a connection from inside it (mifumo.proxy)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from mifumo.env import as_networks
from mifumo.proxy import forwarded_scheme, take_forwarded_scheme, trusted_peer

NAME = "MIFUMO_TRUSTED_PROXIES"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.0/8", ["10.0.0.0/8"]),
        (" 10.0.0.0/8 ,fd00::/8, ", ["10.0.0.0/8", "fd00::/8"]),
        ("192.0.2.7", ["192.0.2.7/32"]),
        ("2001:db8::7", ["2001:db8::7/128"]),
        ("", []),
        (" , ", []),
    ],
)
def test_the_networks_are_read_from_a_comma_separated_value(value: str, expected: list[str]):
    assert [str(network) for network in as_networks(NAME, value)] == expected


@pytest.mark.parametrize(
    "entry",
    [
        "10.0.0.0/33",  # no such prefix
        "10.0.0.1/8",  # host bits set: 10.0.0.0/8 or 10.0.0.1/32?
        "10.0.0.0/8/1",
        "256.0.0.0/8",
        "proxy.internal",  # names are not resolved
        "10.0.0.0-10.0.0.9",
        "2001:db8::/129",
    ],
)
def test_a_malformed_entry_is_a_clear_error_naming_it(entry: str):
    with pytest.raises(ImproperlyConfigured) as caught:
        as_networks(NAME, f"127.0.0.0/8, {entry} ,10.0.0.0/8")
    message = str(caught.value)
    assert message.startswith(f"{NAME} must be IP networks such as 10.0.0.0/8")
    assert repr(entry) in message


@pytest.fixture
def behind_proxy(settings: Any) -> Any:
    settings.MIFUMO_TRUST_PROXY = True
    settings.MIFUMO_TRUSTED_PROXIES = as_networks(NAME, "10.0.0.0/8,fd00::/8")
    return settings


def meta(peer: str, **headers: str) -> dict[str, str]:
    return {"REMOTE_ADDR": peer, **headers}


def test_a_peer_is_trusted_only_inside_the_networks_and_with_the_proxy_on(behind_proxy: Any):
    assert trusted_peer(meta("10.1.2.3"))
    assert trusted_peer(meta("fd00::1"))
    assert trusted_peer(meta("::ffff:10.1.2.3"))
    for peer in ("11.0.0.1", "127.0.0.1", "fe80::1", "::ffff:11.0.0.1", "", "unknown"):
        assert not trusted_peer(meta(peer)), peer
    assert not trusted_peer({})
    behind_proxy.MIFUMO_TRUST_PROXY = False
    assert not trusted_peer(meta("10.1.2.3"))


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        ("10.1.2.3", "https", "https"),
        ("10.1.2.3", "HTTPS", "https"),
        ("10.1.2.3", "https, http", "https"),  # the first value is the nearest proxy's client
        ("10.1.2.3", "http", "http"),
        ("10.1.2.3", "", "http"),
        ("10.1.2.3", None, None),
        ("203.0.113.5", "https", None),
        ("203.0.113.5", "http", None),
    ],
)
def test_the_forwarded_scheme_is_a_trusted_proxys(
    behind_proxy: Any, peer: str, header: str | None, expected: str | None
):
    headers = {} if header is None else {"HTTP_X_FORWARDED_PROTO": header}
    assert forwarded_scheme(meta(peer, **headers)) == expected


@pytest.mark.parametrize(
    ("peer", "connection", "header", "secure"),
    [
        ("10.1.2.3", "http", "https", True),
        ("10.1.2.3", "https", "http", False),
        ("10.1.2.3", "https", None, True),
        ("203.0.113.5", "http", "https", False),
        ("203.0.113.5", "https", "http", True),
    ],
)
def test_the_request_is_secure_as_a_trusted_proxy_or_its_connection_says(
    behind_proxy: Any, peer: str, connection: str, header: str | None, secure: bool
):
    extra: dict[str, Any] = {} if header is None else {"HTTP_X_FORWARDED_PROTO": header}
    request = RequestFactory().get(
        "/", REMOTE_ADDR=peer, HTTP_HOST="testserver", secure=connection == "https", **extra
    )
    take_forwarded_scheme(request)
    assert request.is_secure() is secure
    assert request.build_absolute_uri("/x") == f"{'https' if secure else 'http'}://testserver/x"


def test_the_setting_holds_networks(settings: Any):
    assert all(
        isinstance(network, ipaddress.IPv4Network | ipaddress.IPv6Network)
        for network in settings.MIFUMO_TRUSTED_PROXIES
    )
