"""Request environs without the server process's environment variables.

granian, like the standard library's wsgiref (``runserver``), starts every request's environ
from a copy of ``os.environ``. The process's DATABASE_URL, SECRET_KEY and the rest would reach
``request.META`` (and error reports), and a variable named like a header (``HTTP_...``) would
read as a header the client never sent. ``ProcessEnvironDropped`` removes the process
environment's entries, except the ones the server sets for each request anyway. A name a
request can carry too (a header, ``CONTENT_TYPE``, ``CONTENT_LENGTH``) is removed only while
it holds the process's value: a header a client sends with exactly the value of a same-named
process variable is dropped too; no real header is named like that.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Set by the server for every request: a process variable of that name never shows through.
SERVER_SET = frozenset(
    {
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "REMOTE_ADDR",
        "GATEWAY_INTERFACE",
        "SERVER_SOFTWARE",
    }
)


def _from_request(name: str) -> bool:
    return name.startswith("HTTP_") or name in ("CONTENT_TYPE", "CONTENT_LENGTH")


class ProcessEnvironDropped:
    def __init__(self, app: WSGIApp, process_environ: dict[str, str] | None = None) -> None:
        self.app = app
        source = dict(os.environ) if process_environ is None else process_environ
        kept = {k: v for k, v in source.items() if k not in SERVER_SET}
        # Names only the process environment has go whatever they hold (one pop each).
        self.names = tuple(k for k in kept if not _from_request(k))
        self.maybe_sent = tuple((k, v) for k, v in kept.items() if _from_request(k))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        pop = environ.pop
        for name in self.names:
            pop(name, None)
        for name, value in self.maybe_sent:
            if environ.get(name) == value:
                del environ[name]
        return self.app(environ, start_response)
