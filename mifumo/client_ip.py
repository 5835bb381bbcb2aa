"""The client's address: the peer's, or behind trusted proxies the address the nearest of
them received the request from.

Every proxy appends the address it saw to ``X-Forwarded-For``; whatever stands left of what
our own proxies appended was written by the client and proves nothing. The header counts only
from a trusted proxy: with ``MIFUMO_TRUST_PROXY`` on, a peer inside ``MIFUMO_TRUSTED_PROXIES``
(``mifumo.proxy.trusted_peer``); any other peer, a client that reached the port directly, is
the client. With ``MIFUMO_TRUSTED_PROXY_COUNT`` proxies in front (1 by default when
``MIFUMO_TRUST_PROXY`` is on), the client is that many entries from the right. A header with
fewer entries, or an entry that is not an IP address, is not trusted: the peer address is
used. Throttles, the activity log and the access log all take the address from here.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

from mifumo.proxy import trusted_peer


def _ip(entry: str) -> str | None:
    """The address in an X-Forwarded-For entry (some proxies add a port), or None."""
    text = entry.strip()
    if text.startswith("["):  # [2001:db8::1]:4711
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # 198.51.100.7:4711
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str:
    peer = str(request.META.get("REMOTE_ADDR") or "unknown")
    hops = int(getattr(settings, "MIFUMO_TRUSTED_PROXY_COUNT", 0))
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
    if hops <= 0 or not forwarded or not trusted_peer(request.META):
        return peer
    entries = forwarded.split(",")
    if len(entries) < hops:
        return peer
    return _ip(entries[-hops]) or peer
