"""The send's fast path (sms.fast_send) answers as Django and DRF do, case by case through
the twin harness of tests/fast_paths.py."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import OperationalError
from django.test import override_settings

from contacts.services import contact_create, contact_opt_out
from integration import auth
from integration.fast import MIDDLEWARE
from integration.models import Account, ApiKey, ApiRequestLog, LedgerEntry, Permission
from integration.ratelimit import account_rate
from integration.services import account_set_limits, api_key_revoke
from integration.views import HANDED_OVER_HIT, account_hit, hand_over
from mifumo import metrics
from mifumo.api.middleware import request_id_var
from sms import apis as sms_apis
from sms import fast_send
from sms.fast_send import FastSend
from sms.models import Message, Recipient
from tests.fast_paths import (
    BAD_KEYS,
    BALANCE,
    OVER_HTTPS,
    SEND,
    TZ,
    TZ2,
    Apps,
    Kept,
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

PATH = SEND


@pytest.fixture
def apps() -> Iterator[Callable[[], Apps]]:
    yield from app_builder(FastSend)


def opted_out(phone: str) -> Callable[[Account], None]:
    def prepare(account: Account) -> None:
        contact_opt_out(contact=contact_create(account=account, name="c", phone_number=phone))

    return prepare


# --- served by the fast path ---------------------------------------------------------------

SERVED = {
    "one recipient": {"message": "Habari, your order is ready", "recipients": [TZ]},
    "several, a duplicate, a local form": {
        "message": "Habari",
        "recipients": [TZ, "0712345678", TZ2, " +255 754 000 222 "],
    },
    "ucs-2 in two parts": {"message": "Habari 😀" + "x" * 70, "recipients": [TZ]},
    "160 gsm characters": {"message": "a" * 160, "recipients": [TZ]},
    "gsm extension characters": {"message": "€ [x] {y} ~ ^ | \\", "recipients": [TZ]},
    "placeholders rendered per recipient": {"message": "Hi {{phone}}", "recipients": [TZ, TZ2]},
    # Refusals, in the view's words.
    "too long": {"message": "a" * 161, "recipients": [TZ]},
    "an invalid phone": {"message": "x", "recipients": [TZ, "12"]},
    "no recipients": {"message": "x", "recipients": []},
    "no recipients key": {"message": "x"},
    "blank message": {"message": "   ", "recipients": [TZ]},
    "unsupported destination": {"message": "x", "recipients": [TZ, "+254712345678"]},
    "an unknown placeholder": {"message": "Hi {{nope}}", "recipients": [TZ]},
}


@pytest.mark.parametrize("body", SERVED.values(), ids=SERVED.keys())
def test_the_commonest_bodies_are_served_with_the_views_answer(apps, body):
    fast, _ = both(apps(), body, served=True)
    assert fast.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_ACCEPT": "application/json"},
        {"HTTP_ACCEPT": "*/*"},
        {"content_type": "application/json; charset=utf-8"},
        {"HTTP_X_REQUEST_ID": "client-chosen-id-1"},
        {"HTTP_X_FORWARDED_FOR": "10.1.2.3"},
    ],
)
def test_usual_headers_are_served_alike(apps, headers):
    keep = {"x-request-id"} if "HTTP_X_REQUEST_ID" in headers else set()
    fast, _ = both(apps(), SERVED["one recipient"], served=True, keep=keep, **headers)
    if keep:
        assert fast.headers["x-request-id"] == "client-chosen-id-1"


def test_a_test_key_sends_a_test_message_alike(apps):
    made = apps()
    pair = settled(made, twin(test=True), twin(test=True))
    fast, _ = both(made, SERVED["one recipient"], served=True, twins=pair)
    assert fast.json()["data"]["test"] is True


def test_a_balance_short_of_the_cost_is_refused_alike_and_charges_nothing(apps):
    made = apps()
    pair = settled(made, twin(balance="15.00"), twin(balance="15.00"))
    fast, _ = both(made, {"message": "x", "recipients": [TZ, TZ2]}, served=True, twins=pair)
    assert fast.status == "402 Payment Required"
    assert fast.json()["details"] == {"cost": 20.0, "balance": 15.0, "currency": "TZS"}
    pair[0].account.refresh_from_db()
    assert pair[0].account.balance == Decimal("15.00")
    assert not Message.objects.filter(account=pair[0].account).exists()


@pytest.mark.parametrize("recipients", [[TZ2], [TZ, TZ2]], ids=["everyone", "one of two"])
def test_opted_out_numbers_are_answered_alike(apps, recipients):
    made = apps()
    pair = settled(made, twin(prepare=opted_out(TZ2)), twin(prepare=opted_out(TZ2)))
    both(made, {"message": "x", "recipients": recipients}, served=True, twins=pair)


def test_the_recipient_limit_is_answered_alike(apps, settings):
    settings.MIFUMO_MAX_RECIPIENTS = 2
    fast, _ = both(apps(), {"message": "x", "recipients": [TZ, TZ2, "+255754000333"]}, served=True)
    assert fast.json()["error_code"] == "TOO_MANY_RECIPIENTS"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RuntimeError("boom"), "500 Internal Server Error"),
        (OperationalError("the database went away"), "503 Service Unavailable"),
    ],
    ids=["a bug", "the database down"],
)
def test_an_unexpected_failure_of_the_send_is_answered_alike(apps, monkeypatch, error, status):
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    # The view and the fast path each call the send by their own name for it.
    monkeypatch.setattr(sms_apis, "send", fail)
    monkeypatch.setattr(fast_send, "send", fail)
    fast, _ = both(apps(), SERVED["one recipient"], served=True)
    assert fast.status == status


def test_a_served_send_moves_money_once_with_its_ledger_row(apps):
    made = apps()
    (first,) = settled(made, twin())
    answers = [
        call(made.fast, environ(encode(SERVED["one recipient"]), first.key)) for _ in range(3)
    ]
    assert [a.status for a in answers] == ["200 OK"] * 3 and made.handed == []
    first.account.refresh_from_db()
    assert first.account.balance == Decimal("4970.00")
    ids = {a.json()["data"]["message_id"] for a in answers}
    assert set(Message.objects.filter(account=first.account).values_list("id", flat=True)) == ids
    debits = LedgerEntry.objects.filter(account=first.account, kind="debit")
    assert sorted(debits.values_list("reference", flat=True)) == sorted(ids)
    assert Recipient.objects.filter(message_id__in=ids, status="queued").count() == 3


def test_a_new_key_is_confirmed_by_the_view(apps):
    """A key's first request loads it from the database and is served; the next finds it
    kept under no version yet and goes to the view, which confirms it; then it is served."""
    made, first = apps(), twin()
    assert ApiKey.objects.get(account=first.account).last_used_at is None
    for served in (True, False, True, True):
        handed = len(made.handed)
        answer = call(made.fast, environ(encode(SERVED["one recipient"]), first.key))
        assert answer.status == "200 OK"
        assert (len(made.handed) == handed) is served
    # The first request, served, recorded the key's use.
    assert ApiKey.objects.get(account=first.account).last_used_at is not None
    assert Message.objects.filter(account=first.account).count() == 4


def test_the_usage_log_metrics_and_access_line_are_recorded_alike(apps):
    made = apps()
    first, second = settled(made, twin(), twin())
    counter = metrics.HTTP_REQUESTS.labels("POST", PATH, "200")
    before = counter._value.get()
    kept = Kept()
    logging.getLogger("mifumo.access").addHandler(kept)
    try:
        both(made, SERVED["one recipient"], served=True, twins=(first, second))
        both(made, SERVED["too long"], served=True, twins=(first, second))
    finally:
        logging.getLogger("mifumo.access").removeHandler(kept)
    assert counter._value.get() == before + 2

    def usage(account: Account) -> list[tuple[Any, ...]]:
        rows = ApiRequestLog.objects.filter(account_id=account.pk, method="POST").order_by("id")
        return list(rows.values_list("method", "route", "status_code", "error_code"))

    assert (
        usage(first.account)
        == usage(second.account)
        == [
            ("POST", "api/integration/v1/sms/send/", 200, ""),
            ("POST", "api/integration/v1/sms/send/", 400, "MESSAGE_TOO_LONG"),
        ]
    )
    lines = [
        (r.method, r.path, r.status, r.route, r.client)  # type: ignore[attr-defined]
        for r in kept.records
        if r.method == "POST"  # type: ignore[attr-defined]
    ]
    assert lines == [
        ("POST", PATH, status, PATH, one.address)
        for status in (200, 400)
        for one in (first, second)
    ]
    assert request_id_var.get() is None


# --- left to Django, untouched -------------------------------------------------------------

LEFT: dict[str, tuple[Any, dict[str, Any]]] = {
    "a sender id": ({"message": "x", "recipients": [TZ], "sender_id": "ACME"}, {}),
    "variables": ({"message": "Hi {{a}}", "recipients": [TZ], "variables": {"a": "b"}}, {}),
    "a template": ({"template_id": "tpl_nope", "recipients": [TZ]}, {}),
    "an unknown field": ({"message": "x", "recipients": [TZ], "unknown": 1}, {}),
    "recipients not a list": ({"message": "x", "recipients": TZ}, {}),
    "a NUL in the text": ({"message": "a\x00b", "recipients": [TZ]}, {}),
    "not JSON": (b"{not json", {}),
    "NaN": (b'{"message": NaN, "recipients": []}', {}),
    "a byte-order mark": (b'\xef\xbb\xbf{"message": "x", "recipients": []}', {}),
    "not UTF-8": (b'{"message": "\xff", "recipients": []}', {}),
    "empty": (b"", {}),
    "a list": ([TZ], {}),
    "form data": (b"message=x&recipients=%2B255712345678", {"content_type": "text/plain"}),
    "no content type": (SERVED["one recipient"], {"content_type": None}),
    "another charset": (
        SERVED["one recipient"],
        {"content_type": "application/json; charset=latin-1"},
    ),
    "an accept it cannot meet": (SERVED["one recipient"], {"HTTP_ACCEPT": "text/html"}),
    "an indented accept": (SERVED["one recipient"], {"HTTP_ACCEPT": "application/json; indent=2"}),
    "a query string": (SERVED["one recipient"], {"query": "format=json"}),
    "an idempotency key": (SERVED["one recipient"], {"HTTP_IDEMPOTENCY_KEY": "k-1"}),
    "a cookie": (SERVED["one recipient"], {"HTTP_COOKIE": "csrftoken=" + "a" * 32}),
    "a host not allowed": (SERVED["one recipient"], {"HTTP_HOST": "evil.example"}),
    "another method": (SERVED["one recipient"], {"method": "PUT"}),
    "a longer path": (SERVED["one recipient"], {"path": PATH + "x/"}),
    "no slash": (SERVED["one recipient"], {"path": PATH[:-1]}),
    "a body shorter than its Content-Length": (
        SERVED["one recipient"],
        {"CONTENT_LENGTH": "500"},
    ),
    "chunked, no length": (
        SERVED["one recipient"],
        {"HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_LENGTH": None},
    ),
}


@pytest.mark.parametrize(("body", "request_"), LEFT.values(), ids=LEFT.keys())
def test_anything_else_goes_to_django_with_its_body(apps, body, request_):
    both(apps(), body, served=False, **request_)


def test_a_body_over_the_limit_goes_to_django(apps, settings):
    settings.MIFUMO_MAX_BODY_BYTES = 64
    fast, _ = both(apps(), {"message": "x" * 80, "recipients": [TZ]}, served=False)
    assert fast.json()["error_code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_keys_that_do_not_authenticate_go_to_django(apps, key):
    fast, _ = both(apps(), SERVED["one recipient"], served=False, key=key)
    assert fast.status == "401 Unauthorized"


def test_a_read_only_key_goes_to_django(apps):
    pair = (twin(permission=Permission.READ), twin(permission=Permission.READ))
    fast, _ = both(apps(), SERVED["one recipient"], served=False, twins=pair)
    assert fast.status == "403 Forbidden"


def test_a_revoked_key_goes_to_django(apps):
    pair = (twin(), twin())
    for one in pair:
        api_key_revoke(api_key=ApiKey.objects.get(account=one.account))
    fast, _ = both(apps(), SERVED["one recipient"], served=False, twins=pair)
    assert fast.status == "401 Unauthorized"


def test_an_https_redirect_goes_to_django_and_https_is_served_with_hsts(apps, settings):
    https_behind_a_proxy(settings)
    made = apps()
    fast, _ = both(made, SERVED["one recipient"], served=False)
    assert fast.status.startswith("301")
    # The twins call from private addresses: a proxy's, trusted by default.
    fast, _ = both(made, SERVED["one recipient"], served=True, HTTP_X_FORWARDED_PROTO="https")
    assert fast.headers["strict-transport-security"].startswith("max-age=3600")
    fast, _ = both(made, SERVED["one recipient"], served=True, **OVER_HTTPS)
    assert fast.headers["strict-transport-security"].startswith("max-age=3600")


def test_a_forwarded_https_from_a_client_past_the_proxy_is_ignored_alike(apps, settings):
    https_behind_a_proxy(settings)
    made = apps()
    trusted = settled(made, twin(), twin())
    direct = past_the_proxy(*settled(made, twin(), twin()))
    fast, _ = both(
        made, SERVED["one recipient"], served=False, twins=direct, HTTP_X_FORWARDED_PROTO="https"
    )
    assert fast.status.startswith("301")
    assert fast.headers["location"] == f"https://testserver{SEND}"
    assert "strict-transport-security" not in fast.headers
    # Over HTTPS of its own it is served, whatever it writes.
    fast, _ = both(
        made,
        SERVED["one recipient"],
        served=True,
        twins=direct,
        HTTP_X_FORWARDED_PROTO="http",
        **OVER_HTTPS,
    )
    assert fast.headers["strict-transport-security"].startswith("max-age=3600")
    # From the proxy, its word on the scheme wins over the connection's.
    fast, _ = both(
        made,
        SERVED["one recipient"],
        served=False,
        twins=trusted,
        HTTP_X_FORWARDED_PROTO="http",
        **OVER_HTTPS,
    )
    assert fast.status.startswith("301")
    # And with no proxy trusted, nobody's.
    settings.MIFUMO_TRUST_PROXY = False
    fast, _ = both(
        made, SERVED["one recipient"], served=False, twins=trusted, HTTP_X_FORWARDED_PROTO="https"
    )
    assert fast.status.startswith("301")


def test_a_forwarded_address_from_a_client_past_the_proxy_is_not_its_own(apps, settings):
    settings.MIFUMO_TRUST_PROXY = True
    settings.MIFUMO_TRUSTED_PROXY_COUNT = 1
    made = apps()
    direct = past_the_proxy(*settled(made, twin(), twin()))
    trusted = settled(made, twin(), twin())
    kept = Kept()
    logging.getLogger("mifumo.access").addHandler(kept)
    try:
        both(
            made, SERVED["one recipient"], served=True, twins=direct, HTTP_X_FORWARDED_FOR="6.6.6.6"
        )
        both(
            made,
            SERVED["one recipient"],
            served=True,
            twins=trusted,
            HTTP_X_FORWARDED_FOR="6.6.6.6",
        )
    finally:
        logging.getLogger("mifumo.access").removeHandler(kept)
    # The access line of each road: a client past the proxy at its own address, the proxy's
    # client at the address the proxy added.
    clients = [r.client for r in kept.records]  # type: ignore[attr-defined]
    assert clients == [*(one.address for one in direct), "6.6.6.6", "6.6.6.6"]


def test_switched_off_or_under_another_middleware_chain_everything_goes_to_django(apps, settings):
    settings.MIFUMO_SEND_FAST_PATH = False
    both(apps(), SERVED["one recipient"], served=False)
    settings.MIFUMO_SEND_FAST_PATH = True
    with override_settings(MIDDLEWARE=[*MIDDLEWARE[:-1]]):
        both(apps(), SERVED["one recipient"], served=False)


def test_the_chain_it_answers_for_is_the_one_the_settings_run(settings):
    assert tuple(settings.MIDDLEWARE) == MIDDLEWARE


# --- counted, then handed over --------------------------------------------------------------


def limited(account: Account, sends: int = 2) -> None:
    account_set_limits(account=account, limits={"sms_per_minute": sends})


def test_an_exceeded_limit_is_handed_over_and_the_request_counted_once(apps):
    made = apps()
    first, second = settled(made, twin(prepare=limited), twin(prepare=limited))
    answers = []
    for served in (True, True, False, False):
        answers.append(both(made, SERVED["one recipient"], served=served, twins=(first, second)))
    fast = [a[0] for a in answers]
    assert [a.status for a in fast] == ["200 OK", "200 OK"] + ["429 Too Many Requests"] * 2
    assert [a.headers["x-ratelimit-remaining"] for a in fast] == ["1", "0", "0", "0"]
    # Counted once each: the fourth request is the fourth in the window, as in Django alone.
    assert fast[3].json()["details"]["limit"] == 2
    assert "retry-after" in fast[3].headers
    assert Message.objects.filter(account=first.account).count() == 2
    # The hourly API count of both accounts agrees: every request was counted once.
    remaining = []
    for one in (first, second):
        env = environ(b"", one.key, method="GET", path=BALANCE, content_type=None)
        remaining.append(call(made.full, env).headers["x-ratelimit-remaining"])
    # Two to settle each key, four sends, this read.
    assert remaining[0] == remaining[1] == str(account_rate(first.account, "api")[0] - 7)


def test_a_key_kept_by_the_process_and_since_revoked_is_handed_over(apps):
    made = apps()
    first, second = settled(made, twin(), twin())
    both(made, SERVED["one recipient"], served=True, twins=(first, second))
    for one in (first, second):
        api_key_revoke(api_key=ApiKey.objects.get(account=one.account))
    fast, _ = both(made, SERVED["one recipient"], served=False, twins=(first, second))
    assert fast.status == "401 Unauthorized"
    assert fast.json()["details"] == "The provided API key has been revoked"


def test_an_account_changed_since_its_key_was_kept_is_handed_over_with_its_new_limits(apps):
    made = apps()
    first, second = settled(made, twin(), twin())
    both(made, SERVED["one recipient"], served=True, twins=(first, second))
    for one in (first, second):
        limited(one.account, 3)
    fast, _ = both(made, SERVED["one recipient"], served=False, twins=(first, second))
    assert fast.headers["x-ratelimit-limit"] == "3"
    # Reloaded: the next request is served again, under the new limit.
    fast, _ = both(made, SERVED["one recipient"], served=True, twins=(first, second))
    assert fast.headers["x-ratelimit-remaining"] == "0"


def test_a_hit_handed_over_for_another_key_is_not_taken(apps):
    made = apps()
    principal = auth.authenticate(twin().key)
    other, fresh = twin(), twin()
    env = environ(encode(SERVED["one recipient"]), other.key)
    buckets = ["api", "sms_send"]
    hand_over(env, principal, buckets, account_hit(principal, buckets))
    answer = call(made.full, env)
    assert HANDED_OVER_HIT not in env
    # Counted by Django itself, as the first request of a fresh account is.
    expected = call(made.full, environ(encode(SERVED["one recipient"]), fresh.key))
    answer.same_as(expected)
