"""Under the API prefix the browser site's middlewares (sessions, auth, two-factor, messages,
static files) are passed by (mifumo.api.middleware.SiteOnly): API answers are those of
Django's full stack, and the dashboard and the admin keep all of it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.test import Client, override_settings
from django.utils.functional import SimpleLazyObject
from django.utils.module_loading import import_string

from integration.auth import ApiPrincipal
from integration.members import membership_add
from integration.models import Account
from integration.services import IssuedKey
from mifumo.api.middleware import SiteOnly
from tests.dashboard.support import PASSWORD, dash
from tests.helpers import Api

pytestmark = pytest.mark.django_db

TZ = "+255712345678"
# A well-formed CSRF cookie: the API answers it exactly as before.
CSRF_COOKIE = "a" * 32
# Request-specific: new per request or per second. Compared everywhere else.
_VOLATILE_HEADERS = {"X-Request-ID", "Date", "X-RateLimit-Reset"}
_VOLATILE_BODY = [
    (re.compile(r'"msg_[0-9A-Z]{26}"'), '"msg_"'),
    (re.compile(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"'), '"time"'),
]


def full_stack() -> list[str]:
    """settings.MIDDLEWARE with Django's (WhiteNoise's, django-otp's) own classes in place
    of the ones that pass API requests by."""
    names = []
    for name in settings.MIDDLEWARE:
        cls = import_string(name)
        if issubclass(cls, SiteOnly):
            wrapped = cls.__bases__[1]
            name = f"{wrapped.__module__}.{wrapped.__qualname__}"
        names.append(name)
    return names


def test_the_full_stack_is_the_plain_classes() -> None:
    plain = full_stack()
    assert plain != settings.MIDDLEWARE
    assert not any(issubclass(import_string(name), SiteOnly) for name in plain)
    for name in (
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django_otp.middleware.OTPMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ):
        assert name in plain


def signed_in_session_key() -> str:
    """The session cookie of a dashboard user signed in: the API must not care."""
    user = get_user_model().objects.create_user(username="asha", password=PASSWORD)
    browser = Client()
    browser.force_login(user)
    return browser.cookies[settings.SESSION_COOKIE_NAME].value


def normalised(response: Any) -> tuple[int, dict[str, str], str, str]:
    headers = {k: v for k, v in response.items() if k not in _VOLATILE_HEADERS}
    body = response.content.decode()
    for pattern, replacement in _VOLATILE_BODY:
        body = pattern.sub(replacement, body)
    return response.status_code, headers, response.cookies.output(), body


def exchange(raw_key: str, session_key: str) -> list[tuple[int, dict[str, str], str, str]]:
    """The same requests on a fresh client (its handler loads the MIDDLEWARE of the moment),
    from the same state: rate-limit windows, caches and the database are put back after."""
    cache.clear()
    api, stranger, with_cookies = Api(raw_key), Api("mif_live_" + "x" * 32), Api(raw_key)
    with_cookies.client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    with_cookies.client.cookies[settings.CSRF_COOKIE_NAME] = CSRF_COOKIE
    prefix = settings.MIFUMO_API_PREFIX
    with transaction.atomic():
        responses = [
            api.get("sms/balance/"),
            api.post("sms/send/", {"message": "Habari", "recipients": [TZ]}),
            api.post("sms/send/", {"recipients": [TZ]}),
            stranger.get("sms/balance/"),
            Api(None).get("sms/balance/"),
            api.get("no/such/route/"),
            api.get(f"{prefix}sms/balance"),
            api.client.put(f"{prefix}sms/balance/"),
            api.client.options(f"{prefix}sms/balance/"),
            with_cookies.get("sms/balance/"),
            with_cookies.post("sms/send/", {"message": "Habari", "recipients": [TZ]}),
        ]
        transaction.set_rollback(True)
    cache.clear()
    return [normalised(response) for response in responses]


def test_api_answers_are_those_of_the_full_stack(alice_key: IssuedKey) -> None:
    session_key = signed_in_session_key()
    passed_by = exchange(alice_key.raw, session_key)
    with override_settings(MIDDLEWARE=full_stack()):
        full = exchange(alice_key.raw, session_key)
    assert [status for status, *_ in passed_by] == [
        200, 200, 400, 401, 401, 404, 404, 405, 200, 200, 200
    ]  # fmt: skip
    for mine, django_s in zip(passed_by, full, strict=True):
        assert mine == django_s
    # What the full stack would add for a browser, none of which is there.
    for _, headers, cookies, _ in passed_by:
        assert "Vary" not in headers and not cookies
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"


def test_the_schema_is_the_same_document(client: Client) -> None:
    path = f"{settings.MIFUMO_API_PREFIX}schema/"
    passed_by = normalised(client.get(path))
    with override_settings(MIDDLEWARE=full_stack()):
        full = normalised(Client().get(path))
    assert passed_by[0] == 200 and passed_by == full


def test_api_requests_get_no_session_user_or_messages(api: Api) -> None:
    api.client.cookies[settings.SESSION_COOKIE_NAME] = signed_in_session_key()
    request = api.get("sms/balance/").wsgi_request
    assert not hasattr(request, "session")
    assert not hasattr(request, "_messages")
    # Django's request.user is the key's principal, put there by DRF; never a lazy user.
    assert isinstance(request.user, ApiPrincipal)


def test_a_malformed_session_cookie_is_left_alone(api: Api) -> None:
    """The one answer that differs: the full stack clears a session cookie it cannot use
    (Set-Cookie and Vary: Cookie), on a request that never reads it."""
    api.client.cookies[settings.SESSION_COOKIE_NAME] = "junk"
    response = api.get("sms/balance/")
    assert response.status_code == 200
    assert "Vary" not in response and not response.cookies
    with override_settings(MIDDLEWARE=full_stack()):
        cleared = Api(api.raw_key)
        cleared.client.cookies[settings.SESSION_COOKIE_NAME] = "junk"
        response = cleared.get("sms/balance/")
    assert response["Vary"] == "Cookie"
    assert response.cookies[settings.SESSION_COOKIE_NAME].value == ""


def test_the_dashboard_keeps_sessions_csrf_auth_and_messages(alice: Account) -> None:
    user = get_user_model().objects.create_user(username="asha", password=PASSWORD)
    membership_add(user=user, account=alice, role="owner")
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(dash("login/"))
    assert page.status_code == 200
    assert isinstance(page.wsgi_request.user, SimpleLazyObject)
    assert not page.wsgi_request.user.is_authenticated
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    form = {"username": "asha", "password": PASSWORD}
    assert browser.post(dash("login/"), form).status_code == 403
    signed_in = browser.post(dash("login/"), {**form, "csrfmiddlewaretoken": token})
    assert signed_in.status_code == 302 and signed_in["Location"] == dash()
    assert "_auth_user_id" in browser.session
    overview = browser.get(dash())
    assert overview.status_code == 200 and b"Signed in as <strong>asha</strong>" in overview.content
    # is_verified() is put there by the two-factor middleware.
    assert overview.wsgi_request.user.is_verified() is False  # type: ignore[union-attr]
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    signed_out = browser.post(dash("logout/"), {"csrfmiddlewaretoken": token}, follow=True)
    assert b"You are signed out." in signed_out.content


def test_the_admin_keeps_its_sign_in_and_csrf(db: None) -> None:
    browser = Client(enforce_csrf_checks=True)
    assert browser.get("/admin/").status_code == 302
    page = browser.get("/admin/login/")
    assert page.status_code == 200 and settings.CSRF_COOKIE_NAME in browser.cookies
    refused = browser.post("/admin/login/", {"username": "root", "password": "x"})
    assert refused.status_code == 403
