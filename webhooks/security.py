"""Where webhooks may go: URL checks at save time and address checks at connect time.

A webhook URL is chosen by an API user, so without these checks the platform would make
requests into its own network for anyone with a key (SSRF). The same address checks run
twice: when the URL is saved, and right before each request, against the address the
request then connects to (``webhooks.transport``), so a DNS answer that changes in between
(DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from mifumo.errors import DomainError, ErrorCode

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2000
SCHEMES = {"http": 80, "https": 443}

# Instance metadata services. Most sit in ranges refused anyway; these are named so the
# reason given is the true one, and 192.0.0.192 is "global" to the ipaddress module.
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, DigitalOcean, OpenStack
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
_METADATA_HOSTNAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


class UnsafeDestination(Exception):
    """The URL or the address it resolves to is not an allowed webhook target."""


def allow_private() -> bool:
    return bool(settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64, Teredo client)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why a webhook must not connect to ``ip``, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            problem = address_problem(embedded)
            if problem:
                return f"{problem} inside an IPv6 address"
        if ip.scope_id:
            return "a scoped (link-local) address"
        if ip.is_site_local:  # fec0::/10: deprecated, but still routed inside some networks
            return "a site-local address"
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order of preference."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeDestination(f"the host {host} does not resolve ({exc})") from None
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]))
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise UnsafeDestination(f"the host {host} does not resolve")
    return addresses


def vetted_addresses(host: str, port: int) -> list[IPAddress]:
    """Resolve ``host`` and refuse it if any address it resolves to is not public.

    Every address must pass, not just one: a name that answers with both a public and a
    private address is exactly what a rebinding attack looks like.
    """
    name = host.lower().rstrip(".")
    if name in _METADATA_HOSTNAMES and not allow_private():
        raise UnsafeDestination(f"{host} is a cloud metadata host")
    addresses = resolve_host(name, port)
    if not allow_private():
        problem = _first_problem(host, addresses)
        if problem:
            raise UnsafeDestination(problem)
    return addresses


def _first_problem(host: str, addresses: list[IPAddress]) -> str | None:
    name = host.lower().rstrip(".")
    for ip in addresses:
        problem = address_problem(ip)
        if problem:
            where = f"{ip} is" if str(ip) == name else f"{host} resolves to {ip},"
            return f"{where} {problem}"
    return None


def refusal_without_exemption(url: str) -> str | None:
    """Why a production server (MIFUMO_WEBHOOK_ALLOW_PRIVATE off) would refuse ``url``, or
    None: lets a development server say which of its webhooks only it accepts."""
    try:
        _, host, port, _ = split_url(url)
    except UnsafeDestination as exc:
        return str(exc)
    name = host.lower().rstrip(".")
    if name in _METADATA_HOSTNAMES:
        return f"{host} is a cloud metadata host"
    try:
        return _first_problem(host, resolve_host(name, port))
    except UnsafeDestination as exc:
        return str(exc)


def _refuse(field: str, reason: str) -> DomainError:
    return DomainError(
        ErrorCode.VALIDATION_ERROR, f"Webhook URL refused: {reason}", {field: [reason]}
    )


def _normalise_host(host: str) -> str:
    """Lower-case; international names in their ASCII (punycode) form."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise UnsafeDestination("the host name is not valid") from None
    ascii_host = ascii_host.lower()
    if not ascii_host or not set(ascii_host) <= _HOST_CHARACTERS:
        raise UnsafeDestination("the host name is not valid")
    return ascii_host


def split_url(url: str) -> tuple[str, str, int, str]:
    """(normalised URL, host, port, scheme) of a syntactically acceptable webhook URL."""
    if not url:
        raise UnsafeDestination("a URL is required")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeDestination(f"longer than {MAX_URL_LENGTH} characters")
    # CR/LF would let a URL smuggle headers or a second request; no whitespace or control
    # or invisible formatting characters are legitimate in a URL either.
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in url):
        raise UnsafeDestination("contains spaces or control characters")
    # Parsers disagree about backslashes ("http://a.com\@b.com"); refuse rather than guess.
    if "\\" in url:
        raise UnsafeDestination("contains a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeDestination(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UnsafeDestination("only http and https URLs are allowed")
    if "@" in parts.netloc:
        raise UnsafeDestination("credentials in the URL are not allowed")
    if not parts.hostname:
        raise UnsafeDestination("the URL has no host")
    if port == 0:
        raise UnsafeDestination("port 0 is not allowed")
    host = _normalise_host(parts.hostname)
    shown_host = f"[{host}]" if ":" in host else host
    netloc = f"{shown_host}:{port}" if port is not None else shown_host
    normalised = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return normalised, host, port or SCHEMES[scheme], scheme


def validate_webhook_url(url: str, *, field: str = "webhook_url") -> str:
    """The normalised URL, or DomainError(VALIDATION_ERROR) with ``{field: [reason]}``.

    Unless ``MIFUMO_WEBHOOK_ALLOW_PRIVATE`` is on, the host must resolve and every address
    it resolves to must be public. Sending checks the address again, at connect time.
    """
    if not isinstance(url, str):
        raise _refuse(field, "must be a string")
    try:
        normalised, host, port, _ = split_url(url)
        if not allow_private():
            vetted_addresses(host, port)
    except UnsafeDestination as exc:
        raise _refuse(field, str(exc)) from None
    return normalised
