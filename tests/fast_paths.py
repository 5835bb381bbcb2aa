"""The harness that holds a fast path (integration.fast) to Django's answers.

A case runs twice on twin accounts set up alike: once through the fast path in front of the
WSGI application, once through the application alone. The two answers must be the same
(status, headers, body), apart from what is new per request (ids, times, the request id, the
seconds left in the rate window). Each case also says whether the fast path serves it itself
or hands it to Django, and ``both`` checks that this is what happened, so a fast path that
quietly sent everything to Django would fail.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from django.core.wsgi import get_wsgi_application

from integration.models import Account, Permission
from integration.services import account_create, api_key_create
from sms.models import SenderId
from tests.helpers import keep_connection

SEND = "/api/integration/v1/sms/send/"
BALANCE = "/api/integration/v1/sms/balance/"
TZ = "+255712345678"
TZ2 = "+255754000111"
# New per request: their values are compared only where a case sets them.
# Each account's rate windows end at a time of their own, so the seconds left differ.
_VOLATILE_HEADERS = {"x-request-id", "x-ratelimit-reset", "retry-after"}
_VOLATILE_BODY = [
    (re.compile(r'"(msg|con|seg)_[0-9A-Z]{26}"'), r'"\1_"'),
    (re.compile(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"'), '"time"'),
    (re.compile(r'"request_id":"[0-9a-f]{32}"'), '"request_id":"rid"'),
    (re.compile(r"retry after \d+ seconds"), "retry after N seconds"),
    (re.compile(r'"retry_after":\d+'), '"retry_after":N'),
]


@dataclass
class Answer:
    status: str
    headers: dict[str, str]
    body: bytes

    def same_as(self, other: Answer, keep: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        assert self.status == other.status, (self.status, other.status, self.body, other.body)
        assert self._headers(keep) == other._headers(keep)
        assert self._body() == other._body()

    def _headers(self, keep: set[str]) -> dict[str, str]:
        # A volatile header must be there all the same; only its value is not compared.
        headers = {
            k: "(varies)" if k in _VOLATILE_HEADERS - keep else v for k, v in self.headers.items()
        }
        # The length follows the body, whose volatile parts may differ in length.
        if "content-length" in headers:
            assert int(headers["content-length"]) == len(self.body)
            headers["content-length"] = "the body's"
        return headers

    def _body(self) -> str:
        text = self.body.decode()
        for pattern, replacement in _VOLATILE_BODY:
            text = pattern.sub(replacement, text)
        return text

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Apps:
    fast: Any
    full: Callable[..., Any]
    handed: list[dict[str, Any]] = field(default_factory=list)


def app_builder(wrapper: Callable[[Callable[..., Any]], Any]) -> Iterator[Callable[[], Apps]]:
    """Twin WSGI applications, built on demand after a test's settings (Django's middlewares
    read them once): ``wrapper`` in front of Django, counting what it hands over, and Django
    alone. A test module's ``apps`` fixture yields from this."""

    def build() -> Apps:
        django_app = get_wsgi_application()
        made = Apps(fast=None, full=django_app)

        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            made.handed.append(environ)
            return django_app(environ, start_response)

        made.fast = wrapper(counted)
        return made

    with keep_connection():
        yield build


def environ(
    body: bytes,
    key: str | None,
    *,
    content_type: str | None = "application/json",
    path: str = SEND,
    method: str = "POST",
    query: str = "",
    **extra: str,
) -> dict[str, Any]:
    """A request as a WSGI server hands it over."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "testserver",
        "HTTP_USER_AGENT": "mifumo-tests",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    if content_type is not None:
        env["CONTENT_TYPE"] = content_type
    if key is not None:
        env["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    env.update(extra)
    return {name: value for name, value in env.items() if value is not None}


def call(app: Callable[..., Any], env: dict[str, Any]) -> Answer:
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started.extend([status, headers])

    result = app(env, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    status, headers = started
    return Answer(status, {name.lower(): value for name, value in headers}, body)


def encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


@dataclass
class Twin:
    account: Account
    key: str
    # Each twin calls from an address of its own: the anonymous limit counts per address.
    address: str


_twins = itertools.count(1)


def twin(
    *,
    balance: str = "5000.00",
    permission: str = Permission.ADMIN,
    test: bool = False,
    prepare: Callable[[Account], None] | None = None,
) -> Twin:
    number = next(_twins)
    account = account_create(name=f"twin {number}", balance=balance)
    SenderId.objects.get_or_create(
        account=account, value="ACME", defaults={"status": SenderId.Status.APPROVED}
    )
    if prepare is not None:
        prepare(account)
    raw = api_key_create(account=account, name="k", permission=permission, test=test).raw
    return Twin(account, raw, f"10.0.{number // 250}.{number % 250 + 1}")


# A request that came over HTTPS: the server says so in the environ.
OVER_HTTPS: dict[str, Any] = {"wsgi.url_scheme": "https"}
_public = itertools.count(1)


def https_behind_a_proxy(settings: Any) -> None:
    """Production's HTTPS: plain HTTP redirected, HSTS on, the proxy's forwarded scheme
    honoured (from the proxies' networks only)."""
    settings.SECURE_SSL_REDIRECT = True
    settings.MIFUMO_TRUST_PROXY = True
    settings.SECURE_HSTS_SECONDS = 3600


def past_the_proxy(*twins: Twin) -> tuple[Twin, ...]:
    """The twins calling from public addresses, each its own, outside the proxy networks
    trusted by default (MIFUMO_TRUSTED_PROXIES): clients that reach the server directly."""
    return tuple(
        replace(one, address=f"203.0.{113 + number // 250}.{number % 250 + 1}")
        for one, number in zip(twins, _public, strict=False)
    )


def settled(made: Apps, *twins: Twin) -> tuple[Twin, ...]:
    """The twins with their keys kept by this process under the current version, as a busy
    server has them: a key is loaded by its first request and confirmed by the next (until
    then the fast path hands the request over, see test_a_new_key_is_confirmed_by_the_view).
    Two balance reads each, counted alike for every twin."""
    for one in twins:
        for _ in range(2):
            env = environ(b"", one.key, method="GET", path=BALANCE, content_type=None)
            env.update(REMOTE_ADDR=one.address, HTTP_X_FORWARDED_PROTO="https")
            assert call(made.full, env).status == "200 OK"
    return twins


def both(
    made: Apps,
    body: Any,
    *,
    served: bool,
    keep: set[str] = frozenset(),  # type: ignore[assignment]
    twins: tuple[Twin, ...] | None = None,
    key: Callable[[Twin], str | None] = lambda t: t.key,
    **request: Any,
) -> tuple[Answer, Answer]:
    """The answer through the fast path (first twin) and through Django alone (the second);
    they must be the same, and the fast path must have served the request itself or not, as
    ``served`` says. ``path`` may be a function of the twin (a path naming its own rows)."""
    first, second = twins or settled(made, twin(), twin())
    path = request.pop("path", SEND)

    def env_of(one: Twin) -> dict[str, Any]:
        where = path(one) if callable(path) else path
        return dict(environ(encode(body), key(one), path=where, **request), REMOTE_ADDR=one.address)

    handed = len(made.handed)
    fast = call(made.fast, env_of(first))
    assert (len(made.handed) == handed) is served, "served" if not served else "handed over"
    full = call(made.full, env_of(second))
    fast.same_as(full, keep)
    return fast, full


class Kept(logging.Handler):
    """Keeps the records it is given (the access log's lines, to compare them)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# Keys that do not authenticate, each a function of the twin whose key it spoils.
BAD_KEYS: dict[str, Callable[[Twin], str | None]] = {
    "no key": lambda t: None,
    "malformed": lambda t: "not-a-key",
    "wrong secret": lambda t: t.key[:-2] + ("aa" if not t.key.endswith("aa") else "bb"),
}
