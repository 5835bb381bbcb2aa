"""The read fast path (integration.fast.FastRead) answers as Django and DRF do, case by case
through the twin harness of tests/fast_paths.py."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import OperationalError
from django.test import override_settings
from django.urls import get_resolver

from contacts.services import contact_create
from integration.fast import MIDDLEWARE, FastRead
from integration.models import Account, ApiKey, ApiRequestLog
from integration.ratelimit import account_rate
from integration.services import account_set_limits, api_key_revoke
from mifumo import metrics
from mifumo.api.middleware import request_id_var
from sms import selectors
from tests.fast_paths import (
    BAD_KEYS,
    BALANCE,
    OVER_HTTPS,
    SEND,
    TZ,
    TZ2,
    Apps,
    Kept,
    Twin,
    app_builder,
    both,
    call,
    encode,
    environ,
    https_behind_a_proxy,
    past_the_proxy,
    settled,
    twin,
)

pytestmark = pytest.mark.django_db

API = "/api/integration/v1/"
REPORTS = API + "sms/delivery-reports/"
SEARCH = API + "contacts/search/"
MESSAGES = API + "sms/messages/"

# The message each twin sent, by account.
_sent: dict[int, str] = {}


@pytest.fixture
def apps() -> Iterator[Callable[[], Apps]]:
    yield from app_builder(FastRead)


def status(one: Twin) -> str:
    return f"{API}sms/status/{_sent[one.account.pk]}/"


def with_rows(account: Account) -> None:
    for n, name in enumerate(("Amina Juma", "Baraka Mushi", "Amani Kweka")):
        contact_create(account=account, name=name, phone_number=f"+2557540001{n:02d}")


def sent(made: Apps, *twins: Twin) -> tuple[Twin, ...]:
    """The twins, settled, each with a message to two numbers and three contacts."""
    settled(made, *twins)
    for one in twins:
        env = environ(encode({"message": "Habari", "recipients": [TZ, TZ2]}), one.key)
        env.update(REMOTE_ADDR=one.address, HTTP_X_FORWARDED_PROTO="https")
        answer = call(made.full, env)
        assert answer.status == "200 OK", answer.body
        _sent[one.account.pk] = answer.json()["data"]["message_id"]
    return twins


def pair(made: Apps, **options: Any) -> tuple[Twin, ...]:
    return sent(made, twin(prepare=with_rows, **options), twin(prepare=with_rows, **options))


def read(made: Apps, path: Any, *, served: bool, query: str = "", **request: Any) -> Any:
    twins = request.pop("twins", None) or pair(made)
    request.setdefault("method", "GET")
    request.setdefault("content_type", None)
    fast, _ = both(made, b"", served=served, twins=twins, path=path, query=query, **request)
    return fast


# --- served by the fast path ---------------------------------------------------------------

SERVED: dict[str, tuple[Any, str]] = {
    "a status": (status, ""),
    "a status, one recipient a page": (status, "per_page=1&page=2"),
    "a status past its last page": (status, "page=9"),
    "a status with per_page out of range": (status, "per_page=0"),
    "a status with a page not a number": (status, "page=two"),
    "an unknown message": (API + "sms/status/msg_01J0000000000000000000000/", ""),
    # As a WSGI server hands a path over: its UTF-8 bytes read as Latin-1.
    "a message id not in ASCII": (API + "sms/status/msg_\xc3\x95\xf0\xa0\x9d\x92/", ""),
    "delivery reports": (REPORTS, ""),
    "delivery reports, a page of one": (REPORTS, "per_page=1&page=2"),
    "delivery reports by status": (REPORTS, "status=queued"),
    "delivery reports by a status that is none": (REPORTS, "status=lost"),
    "delivery reports between dates": (REPORTS, "start_date=2020-01-01&end_date=2099-12-31"),
    "delivery reports from a date not a date": (REPORTS, "start_date=yesterday"),
    "a contact search": (SEARCH, "q=Am"),
    "a search by a local number": (SEARCH, "q=0754000101"),
    "contacts, no q": (SEARCH, ""),
    "contacts, limit and offset": (SEARCH, "limit=1&offset=1"),
    "contacts, a limit out of range": (SEARCH, "limit=0"),
    "contacts in a segment that is none": (SEARCH, "segment_id=seg_nope"),
    "the balance": (BALANCE, ""),
    "a repeated parameter": (REPORTS, "per_page=1&per_page=2"),
    # Django reads the bytes of a lone surrogate as replacement characters.
    "an undecodable parameter": (SEARCH, "q=%ED%A0%80"),
}


@pytest.mark.parametrize(("path", "query"), SERVED.values(), ids=SERVED.keys())
def test_the_polled_reads_are_served_with_the_views_answer(apps, path, query):
    fast = read(apps(), path, served=True, query=query)
    assert fast.headers["content-type"] == "application/json"
    assert fast.headers["allow"] == "GET, HEAD, OPTIONS"


def test_the_answers_hold_the_twins_rows(apps):
    made = apps()
    fast = read(made, status, served=True)
    assert fast.json()["data"]["recipient_count"] == 2
    fast = read(made, SEARCH, served=True, query="q=Am")
    assert [c["name"] for c in fast.json()["data"]["contacts"]] == ["Amani Kweka", "Amina Juma"]
    fast = read(made, REPORTS, served=True, query="status=lost")
    assert fast.status == "400 Bad Request"
    assert fast.json()["error_code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_ACCEPT": "application/json"},
        {"HTTP_ACCEPT": "*/*"},
        {"HTTP_X_REQUEST_ID": "client-chosen-id-1"},
        {"HTTP_X_FORWARDED_FOR": "10.1.2.3"},
        {"content_type": "application/json", "CONTENT_LENGTH": "0"},
    ],
)
def test_usual_headers_are_served_alike(apps, headers):
    keep = {"x-request-id"} if "HTTP_X_REQUEST_ID" in headers else set()
    made = apps()
    twins = pair(made)
    content_type = headers.pop("content_type", None)
    fast, _ = both(
        made,
        b"",
        served=True,
        twins=twins,
        path=status,
        method="GET",
        content_type=content_type,
        keep=keep,
        **headers,
    )
    if keep:
        assert fast.headers["x-request-id"] == "client-chosen-id-1"


def test_another_accounts_message_is_not_found_alike(apps):
    made = apps()
    twins = pair(made)
    stranger = sent(made, twin())[0]
    fast = read(made, lambda one: status(stranger), served=True, twins=twins)
    assert fast.status == "404 Not Found"


def test_a_test_key_reads_its_own_test_messages_alike(apps):
    made = apps()
    twins = pair(made, test=True)
    fast = read(made, REPORTS, served=True, twins=twins)
    assert len(fast.json()["data"]["reports"]) == 2
    read(made, status, served=True, twins=twins)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (RuntimeError("boom"), "500 Internal Server Error"),
        (OperationalError("the database went away"), "503 Service Unavailable"),
    ],
    ids=["a bug", "the database down"],
)
def test_an_unexpected_failure_of_the_read_is_answered_alike(apps, monkeypatch, error, code):
    made = apps()
    twins = pair(made)

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(selectors, "message_status_read", fail)
    fast = read(made, status, served=True, twins=twins)
    assert fast.status == code


def test_the_usage_log_metrics_and_access_line_are_recorded_alike(apps):
    made = apps()
    first, second = pair(made)
    route = "api/integration/v1/sms/status/<str:message_id>/"
    counter = metrics.HTTP_REQUESTS.labels("GET", "/" + route, "200")
    before = counter._value.get()
    kept = Kept()
    logging.getLogger("mifumo.access").addHandler(kept)
    try:
        read(made, status, served=True, twins=(first, second))
        read(made, status, served=True, twins=(first, second), query="per_page=0")
    finally:
        logging.getLogger("mifumo.access").removeHandler(kept)
    assert counter._value.get() == before + 2

    def usage(account: Account) -> list[tuple[Any, ...]]:
        rows = ApiRequestLog.objects.filter(account_id=account.pk, route=route).order_by("id")
        return list(rows.values_list("method", "route", "status_code", "error_code"))

    assert (
        usage(first.account)
        == usage(second.account)
        == [("GET", route, 200, ""), ("GET", route, 400, "VALIDATION_ERROR")]
    )
    lines = [
        (r.method, r.path, r.status, r.route, r.client)  # type: ignore[attr-defined]
        for r in kept.records
        if r.method == "GET"  # type: ignore[attr-defined]
    ]
    assert lines == [
        ("GET", status(one), code, "/" + route, one.address)
        for code in (200, 400)
        for one in (first, second)
    ]
    assert request_id_var.get() is None


# --- left to Django, untouched -------------------------------------------------------------

LEFT: dict[str, tuple[Any, dict[str, Any]]] = {
    "a view that does not opt in": (MESSAGES, {}),
    "an unknown route": (API + "sms/nowhere/", {}),
    "outside the API": ("/healthz", {}),
    "HEAD": (status, {"method": "HEAD"}),
    "OPTIONS": (status, {"method": "OPTIONS"}),
    "a format parameter": (status, {"query": "format=json"}),
    "an accept it cannot meet": (status, {"HTTP_ACCEPT": "text/html"}),
    "an indented accept": (status, {"HTTP_ACCEPT": "application/json; indent=2"}),
    "a cookie": (status, {"HTTP_COOKIE": "csrftoken=" + "a" * 32}),
    "a body": (REPORTS, {"CONTENT_LENGTH": "2"}),
    "chunked": (REPORTS, {"HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_LENGTH": None}),
    "a NUL in a parameter": (SEARCH, {"query": "q=a%00b"}),
    "a NUL in the path": (API + "sms/status/msg_\x00/", {}),
    "a path not in ASCII to a view that does not opt in": (
        API + "contacts/segments/\xf1\x86\x98\x8a\x14\xc3\x95/contacts/",
        {},
    ),
    "a host not allowed": (status, {"HTTP_HOST": "evil.example"}),
    "no slash": (REPORTS[:-1], {}),
}


@pytest.mark.parametrize(("path", "request_"), LEFT.values(), ids=LEFT.keys())
def test_anything_else_goes_to_django(apps, path, request_):
    read(apps(), path, served=False, **request_)


def test_a_route_left_to_django_is_remembered_and_left_again(apps):
    made = apps()
    twins = pair(made)
    for _ in range(2):
        read(made, MESSAGES, served=False, twins=twins)
        read(made, REPORTS, served=True, twins=twins)
    assert made.fast._known[MESSAGES] is None
    assert made.fast._known[REPORTS].func.view_class.__name__ == "DeliveryReportsApi"


def test_a_post_to_a_read_goes_to_django(apps):
    made = apps()
    fast, _ = both(made, {}, served=False, twins=pair(made), path=REPORTS)
    assert fast.status == "405 Method Not Allowed"


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_keys_that_do_not_authenticate_go_to_django(apps, key):
    fast = read(apps(), REPORTS, served=False, key=key)
    assert fast.status == "401 Unauthorized"


def test_a_revoked_key_goes_to_django(apps):
    made = apps()
    twins = pair(made)
    for one in twins:
        api_key_revoke(api_key=ApiKey.objects.get(account=one.account))
    fast = read(made, REPORTS, served=False, twins=twins)
    assert fast.status == "401 Unauthorized"
    assert fast.json()["details"] == "The provided API key has been revoked"


def test_an_https_redirect_goes_to_django_and_https_is_served_with_hsts(apps, settings):
    https_behind_a_proxy(settings)
    made = apps()
    twins = pair(made)
    fast = read(made, REPORTS, served=False, twins=twins)
    assert fast.status.startswith("301")
    # The twins call from private addresses: a proxy's, trusted by default.
    fast = read(made, REPORTS, served=True, twins=twins, HTTP_X_FORWARDED_PROTO="https")
    assert fast.headers["strict-transport-security"].startswith("max-age=3600")


def test_a_forwarded_https_from_a_client_past_the_proxy_is_ignored_alike(apps, settings):
    https_behind_a_proxy(settings)
    made = apps()
    twins = pair(made)
    direct = past_the_proxy(*twins)
    fast = read(made, REPORTS, served=False, twins=direct, HTTP_X_FORWARDED_PROTO="https")
    assert fast.status.startswith("301")
    assert fast.headers["location"] == f"https://testserver{REPORTS}"
    assert "strict-transport-security" not in fast.headers
    # Over HTTPS of its own it is served, whatever it writes.
    fast = read(
        made,
        REPORTS,
        served=True,
        twins=direct,
        HTTP_X_FORWARDED_PROTO="http",
        **OVER_HTTPS,
    )
    assert fast.headers["strict-transport-security"].startswith("max-age=3600")
    # From the proxy, its word on the scheme wins over the connection's.
    fast = read(
        made,
        REPORTS,
        served=False,
        twins=twins,
        HTTP_X_FORWARDED_PROTO="http",
        **OVER_HTTPS,
    )
    assert fast.status.startswith("301")
    # And with no proxy trusted, nobody's.
    settings.MIFUMO_TRUST_PROXY = False
    fast = read(made, REPORTS, served=False, twins=twins, HTTP_X_FORWARDED_PROTO="https")
    assert fast.status.startswith("301")


def test_a_forwarded_address_from_a_client_past_the_proxy_is_not_its_own(apps, settings):
    settings.MIFUMO_TRUST_PROXY = True
    settings.MIFUMO_TRUSTED_PROXY_COUNT = 1
    made = apps()
    twins = pair(made)
    direct = past_the_proxy(*twins)
    kept = Kept()
    logging.getLogger("mifumo.access").addHandler(kept)
    try:
        read(made, REPORTS, served=True, twins=direct, HTTP_X_FORWARDED_FOR="6.6.6.6")
        read(made, REPORTS, served=True, twins=twins, HTTP_X_FORWARDED_FOR="6.6.6.6")
    finally:
        logging.getLogger("mifumo.access").removeHandler(kept)
    # The access line of each road: a client past the proxy at its own address, the proxy's
    # client at the address the proxy added.
    clients = [r.client for r in kept.records]  # type: ignore[attr-defined]
    assert clients == [*(one.address for one in direct), "6.6.6.6", "6.6.6.6"]


def test_switched_off_or_under_another_middleware_chain_everything_goes_to_django(apps, settings):
    settings.MIFUMO_READ_FAST_PATH = False
    read(apps(), REPORTS, served=False)
    settings.MIFUMO_READ_FAST_PATH = True
    with override_settings(MIDDLEWARE=[*MIDDLEWARE[:-1]]):
        read(apps(), REPORTS, served=False)


# --- counted, then handed over --------------------------------------------------------------


def test_an_exceeded_limit_is_handed_over_and_the_request_counted_once(apps):
    made = apps()

    def prepare(account: Account) -> None:
        with_rows(account)
        account_set_limits(account=account, limits={"contacts_per_hour": 2})

    first, second = sent(made, twin(prepare=prepare), twin(prepare=prepare))
    answers = [
        read(made, SEARCH, served=served, twins=(first, second), query="q=Am")
        for served in (True, True, False, False)
    ]
    assert [a.status for a in answers] == ["200 OK", "200 OK"] + ["429 Too Many Requests"] * 2
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["1", "0", "0", "0"]
    assert answers[3].json()["details"] == {
        "limit": 2,
        "window": 3600,
        "retry_after": answers[3].json()["details"]["retry_after"],
        "bucket": "contacts",
    }
    # The hourly API count of both accounts agrees: every request was counted once.
    remaining = []
    for one in (first, second):
        env = environ(b"", one.key, method="GET", path=BALANCE, content_type=None)
        remaining.append(call(made.full, env).headers["x-ratelimit-remaining"])
    # Two to settle each key, its send, four searches, this read.
    assert remaining[0] == remaining[1] == str(account_rate(first.account, "api")[0] - 8)


def test_a_new_key_is_confirmed_by_the_view(apps):
    """A key's first request loads it from the database and is served; the next finds it
    kept under no version yet and goes to the view, which confirms it; then it is served."""
    made, first = apps(), twin()
    for served in (True, False, True, True):
        handed = len(made.handed)
        env = environ(b"", first.key, method="GET", path=REPORTS, content_type=None)
        assert call(made.fast, env).status == "200 OK"
        assert (len(made.handed) == handed) is served
    assert ApiKey.objects.get(account=first.account).last_used_at is not None


def test_an_account_changed_since_its_key_was_kept_is_handed_over_with_its_new_limits(apps):
    made = apps()
    twins = pair(made)
    read(made, REPORTS, served=True, twins=twins)
    for one in twins:
        account_set_limits(account=one.account, limits={"api_per_hour": 50})
    fast = read(made, REPORTS, served=False, twins=twins)
    assert fast.headers["x-ratelimit-limit"] == "50"
    fast = read(made, REPORTS, served=True, twins=twins)
    assert fast.headers["x-ratelimit-limit"] == "50"


def test_the_views_that_opt_in_are_the_polled_reads():
    opted = sorted(
        pattern.callback.view_class.__name__
        for pattern in _patterns(get_resolver())
        if getattr(getattr(pattern.callback, "view_class", None), "fast_read", False)
    )
    assert opted == ["BalanceApi", "ContactSearchApi", "DeliveryReportsApi", "StatusApi"]


def _patterns(resolver: Any) -> Iterator[Any]:
    for pattern in resolver.url_patterns:
        if hasattr(pattern, "url_patterns"):
            yield from _patterns(pattern)
        else:
            yield pattern


def test_a_send_is_not_a_read(apps):
    made = apps()
    fast, _ = both(
        made, {"message": "x", "recipients": [TZ]}, served=False, twins=pair(made), path=SEND
    )
    assert fast.status == "200 OK"
