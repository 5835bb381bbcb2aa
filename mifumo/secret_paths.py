"""Paths that carry a secret. A link mailed to someone (a password reset, an invitation)
holds its one-time token in the path itself, so whoever reads a log line with that path can
use the link. A route captures such a segment with the ``secret`` converter
(``<secret:token>``); ``loggable_path`` is the request's path with that segment, and any
after it, shown as ``[token]``, and that is the path every log line names.

The routes are found in the URLconf, so a request that did not resolve to one (the same
link with its trailing slash lost, which Django redirects, or with text added) is
recognised too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from django.urls import URLPattern, URLResolver, get_resolver, get_urlconf
from django.urls.converters import StringConverter

if TYPE_CHECKING:
    from django.http import HttpRequest

CONVERTER = "secret"
REDACTED = "[token]"
_IN_ROUTE = f"<{CONVERTER}:"

_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


class SecretConverter(StringConverter):
    """A path segment that is a credential: matched like ``str``, never logged."""


def _routes(patterns: Iterable[URLPattern | URLResolver], prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        else:
            yield route


def _route_regex(route: str) -> re.Pattern[str] | None:
    """What a path of ``route`` looks like up to its first secret segment, that segment and
    the rest of the path being the ``secret`` group; None for a route with no secret."""
    parts = ["^/"]
    position = 0
    for parameter in _PARAMETER.finditer(route):
        parts.append(re.escape(route[position : parameter.start()]))
        if parameter["converter"] == CONVERTER:
            parts.append("(?P<secret>[^/].*)$")
            return re.compile("".join(parts), re.DOTALL)
        parts.append("[^/]+")
        position = parameter.end()
    return None


@functools.lru_cache(maxsize=8)
def _secret_routes(resolver: URLResolver) -> tuple[re.Pattern[str], ...]:
    """Per URLconf: its resolver is made again when the URLconf changes (tests)."""
    regexes = (_route_regex(route) for route in _routes(resolver.url_patterns))
    return tuple(regex for regex in regexes if regex is not None)


def redact(path_info: str) -> str:
    """``path_info`` with a secret segment of its route, and what follows it, replaced."""
    for regex in _secret_routes(get_resolver(get_urlconf())):
        found = regex.match(path_info)
        if found is not None:
            tail = "/" if path_info.endswith("/") else ""
            return path_info[: found.start("secret")] + REDACTED + tail
    return path_info


def loggable_path(request: HttpRequest) -> str:
    """The path of ``request`` as logs may show it. A request resolved to a route without a
    secret is answered without a look at the URLconf."""
    match = getattr(request, "resolver_match", None)
    if match is not None and _IN_ROUTE not in str(match.route):
        return request.path
    script_name = request.path[: len(request.path) - len(request.path_info)]
    return script_name + redact(request.path_info)
