"""The dashboard: CSRF on every POST, hardened cookies, no framing, everything escaped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, reverse

from contacts.models import Contact
from dashboard.urls import urlpatterns
from integration.members import invitation_create, membership_add
from integration.models import Account, ApiKey, Invitation, Membership
from message_templates.models import MessageTemplate
from segments.models import Segment
from sms.models import Message
from tests.security import Owned, seed
from webhooks.models import Delivery, Endpoint

PASSWORD = "correct horse battery staple 7"
XSS = "<script>alert('x')</script>"
ESCAPED = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
ROOT = Path(__file__).resolve().parents[2]

# url parameter -> the seeded object it names
PARAMETERS = {
    "key_id": "api_key",
    "message_id": "message",
    "webhook_id": "endpoint",
    "delivery_id": "delivery",
    "contact_id": "contact",
    "segment_id": "segment",
    "template_id": "template",
}


def _url(pattern: URLPattern, owned: Owned, team: dict[str, Any] | None = None) -> str:
    """The pattern's address with the seeded objects (and ``team``'s values) filled in."""
    extra = team or {}
    kwargs = {
        name: extra[name] if name in extra else getattr(owned, PARAMETERS[name]).pk
        for name in pattern.pattern.regex.groupindex
    }
    return reverse(f"dashboard:{pattern.name}", kwargs=kwargs)


@pytest.fixture
def owner(alice: Account) -> Any:
    user = get_user_model().objects.create_user(username="asha", password=PASSWORD)
    membership_add(user=user, account=alice, role="owner")
    return user


@pytest.fixture
def owned(alice: Account) -> Owned:
    return seed(alice, text=XSS)


@pytest.fixture
def team(alice: Account, owner: Any) -> dict[str, Any]:
    """The team pages' parameters: a membership, an invitation and its link, a reset link."""
    invitation, token = invitation_create(
        account=alice, email="neema@example.com", role="member", invited_by=owner
    )
    return {
        "membership_id": Membership.objects.get(user=owner).pk,
        "invitation_id": invitation.pk,
        "token": token,
        "uidb64": "MQ",
        "phone": "+255754000001",  # the seeded inbound message's sender
        "keyword_id": 999999,
        "action": "help",
    }


def _counts() -> dict[str, Any]:
    return {
        "keys": list(ApiKey.objects.values_list("pk", "revoked_at", "digest")),
        "endpoints": list(Endpoint.objects.values_list("pk", "active", "url", "secret_encrypted")),
        "messages": Message.objects.count(),
        "deliveries": Delivery.objects.count(),
        "contacts": Contact.objects.count(),
        "segments": Segment.objects.count(),
        "templates": list(MessageTemplate.objects.values_list("pk", "name", "text")),
        "members": list(Membership.objects.values_list("pk", "role")),
        "invitations": list(Invitation.objects.values_list("pk", "accepted_at", "revoked_at")),
        "users": get_user_model().objects.count(),
    }


@pytest.mark.parametrize("pattern", urlpatterns, ids=lambda p: str(p.name))
def test_every_post_without_a_csrf_token_is_refused(
    pattern: URLPattern, owner: Any, owned: Owned, team: dict[str, Any]
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    before = _counts()
    response = client.post(
        _url(pattern, owned, team), {"name": "x", "url": "https://hooks.example.com/x"}
    )
    assert response.status_code in {403, 405}, response.status_code
    assert _counts() == before


def test_login_without_a_csrf_token_is_refused(owner: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("dashboard:login"), {"username": "asha", "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_production_settings_harden_the_cookies() -> None:
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "production-like-secret-key-for-the-settings-check-0123456789",
        "DJANGO_SETTINGS_MODULE": "mifumo.settings",
    }
    env.pop("MIFUMO_HTTPS", None)
    env.pop("SESSION_COOKIE_SECURE", None)
    env.pop("CSRF_COOKIE_SECURE", None)
    script = (
        "import json; from django.conf import settings as s; print(json.dumps({n: getattr(s, n)"
        " for n in ['MIFUMO_HTTPS', 'SESSION_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY',"
        " 'CSRF_COOKIE_SECURE', 'X_FRAME_OPTIONS', 'SECURE_HSTS_SECONDS',"
        " 'SECURE_SSL_REDIRECT', 'SECURE_CONTENT_TYPE_NOSNIFF']}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    values = json.loads(out.stdout.strip().splitlines()[-1])
    assert values == {
        "MIFUMO_HTTPS": True,
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "CSRF_COOKIE_SECURE": True,
        "X_FRAME_OPTIONS": "DENY",
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
    }


def test_the_session_cookie_is_secure_and_http_only(settings: Any, owner: Any) -> None:
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    settings.SESSION_COOKIE_HTTPONLY = True
    client = Client()
    response = client.post(
        reverse("dashboard:login"),
        {"username": "asha", "password": PASSWORD},
        secure=True,
    )
    assert response.status_code == 302, response.status_code
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() in {"lax", "strict"}


LISTING_PAGES = {
    "overview": (),
    "keys": (),
    "messages": (),
    "message": ("message_id",),
    "webhooks": (),
    "webhook": ("webhook_id",),
    "delivery": ("delivery_id",),
    "contacts": (),
    "contact": ("contact_id",),
    "segments": (),
    "segment": ("segment_id",),
    "templates": (),
    "template_edit": ("template_id",),
    "activity": (),
}


@pytest.mark.parametrize("name", sorted(LISTING_PAGES))
def test_user_text_is_escaped_everywhere_it_is_shown(name: str, owner: Any, owned: Owned) -> None:
    client = Client()
    client.force_login(owner)
    kwargs = {p: getattr(owned, PARAMETERS[p]).pk for p in LISTING_PAGES[name]}
    response = client.get(reverse(f"dashboard:{name}", kwargs=kwargs))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>alert(" not in html
    assert "onerror=" not in html


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("keys", "api_key"),
        ("messages", "message"),
        ("message", "message"),
        ("webhooks", "endpoint"),
        ("webhook", "endpoint"),
        ("contacts", "contact"),
        ("contact", "contact"),
        ("segments", "segment"),
        ("segment", "segment"),
    ],
)
def test_the_hostile_text_is_shown_escaped(name: str, kind: str, owner: Any, owned: Owned) -> None:
    # The page really shows the text (escaped), so the check above is not vacuous.
    client = Client()
    client.force_login(owner)
    kwargs = {p: getattr(owned, PARAMETERS[p]).pk for p in LISTING_PAGES[name]}
    html = client.get(reverse(f"dashboard:{name}", kwargs=kwargs)).content.decode()
    assert ESCAPED in html or "&lt;script&gt;" in html, (name, kind)


CSP_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def _policy(response: Any) -> dict[str, str]:
    header = response.get("Content-Security-Policy", "")
    directives = (part.strip().split(None, 1) for part in header.split(";") if part.strip())
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


@pytest.mark.parametrize(
    "pattern",
    [p for p in urlpatterns if p.name not in {"logout"}],
    ids=lambda p: str(p.name),
)
def test_no_page_can_be_framed_and_every_page_has_a_content_security_policy(
    pattern: URLPattern, owner: Any, owned: Owned, team: dict[str, Any]
) -> None:
    client = Client()
    client.force_login(owner)
    response = client.get(_url(pattern, owned, team))
    assert response.get("X-Frame-Options") == "DENY", (response.status_code, pattern.name)
    policy = _policy(response)
    for directive, value in CSP_DIRECTIVES.items():
        assert policy.get(directive) == value, (pattern.name, directive, policy)
    assert "'unsafe-inline'" not in response.get("Content-Security-Policy", "")


def test_the_sign_in_pages_have_the_policy_too() -> None:
    for path in ("login/", "login/code/"):
        response = Client().get(reverse("dashboard:login").replace("login/", path))
        assert _policy(response).get("script-src") == "'self'", path
