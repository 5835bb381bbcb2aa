"""What a proxy in front may tell about a request: the client's address (``X-Forwarded-For``,
read by ``mifumo.client_ip``) and the scheme it was made with (``X-Forwarded-Proto``).

Anyone can write those headers, so they count only when ``MIFUMO_TRUST_PROXY`` is on and the
connection comes from one of ``MIFUMO_TRUSTED_PROXIES`` (the networks the proxies connect
from: loopback and private networks by default). A client that reaches the port directly,
past the proxy, is taken at the connection's own address and scheme whatever it writes.

The scheme is set here rather than by Django's ``SECURE_PROXY_SSL_HEADER``, which would take
the header from any peer: ``ForwardedProtoMiddleware`` (first in ``MIDDLEWARE``) puts the
forwarded scheme in the request's ``wsgi.url_scheme``, which ``request.is_secure()`` reads,
and the fast paths (``integration.fast``) do the same by ``take_forwarded_scheme`` before
Django's security middleware looks at the request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse


def trusted_peer(meta: Mapping[str, Any]) -> bool:
    """Whether the request's forwarded headers count: ``MIFUMO_TRUST_PROXY`` is on and the
    peer (``REMOTE_ADDR``) is inside one of ``MIFUMO_TRUSTED_PROXIES``."""
    if not settings.MIFUMO_TRUST_PROXY:
        return False
    try:
        peer = ipaddress.ip_address(str(meta.get("REMOTE_ADDR") or "").strip())
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped  # ::ffff:10.0.0.2 from a dual-stack socket
    return any(peer in network for network in settings.MIFUMO_TRUSTED_PROXIES)


def forwarded_scheme(meta: Mapping[str, Any]) -> str | None:
    """The scheme a trusted proxy says the client used (the first ``X-Forwarded-Proto``
    value: "https", or else "http"), or None when there is none to take."""
    value = meta.get("HTTP_X_FORWARDED_PROTO")
    if value is None or not trusted_peer(meta):
        return None
    first = str(value).split(",", 1)[0].strip().lower()
    return "https" if first == "https" else "http"


def take_forwarded_scheme(request: HttpRequest) -> None:
    """The request's scheme (``request.scheme``, ``is_secure()``) made the one a trusted
    proxy forwarded; otherwise it stays the connection's."""
    scheme = forwarded_scheme(request.META)
    if scheme is not None:
        request.META["wsgi.url_scheme"] = scheme


class ForwardedProtoMiddleware:
    """``X-Forwarded-Proto`` from a trusted proxy only (``take_forwarded_scheme``), before the
    HTTPS redirect, HSTS and CSRF look at the scheme."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        take_forwarded_scheme(request)
        return self.get_response(request)
