"""Signing in and out, the sign-in throttle, and changing the password."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from integration.models import AuditEvent
from integration.throttle import MAX_FAILURES
from tests.dashboard.support import PASSWORD, dash

pytestmark = pytest.mark.django_db


def sign_in(client: Client, username: str, password: str, **extra: Any) -> Any:
    return client.post(dash("login/"), {"username": username, "password": password}, **extra)


def test_pages_need_a_signed_in_user(client: Client) -> None:
    response = client.get(dash("keys/"))
    assert response.status_code == 302
    assert response["Location"] == f"{dash('login/')}?next={dash('keys/')}"


def test_signing_in_lands_on_the_overview_and_is_recorded(client: Client, owner: Any) -> None:
    response = sign_in(client, "asha", PASSWORD)
    assert response.status_code == 302 and response["Location"] == dash()
    page = client.get(dash())
    assert page.status_code == 200
    assert b"Signed in as <strong>asha</strong>" in page.content
    event = AuditEvent.objects.get(action="login")
    assert event.actor == owner and event.ip == "127.0.0.1"


def test_signing_in_follows_next_only_within_the_site(client: Client, owner: Any) -> None:
    response = client.post(
        dash("login/") + "?next=" + dash("usage/"), {"username": "asha", "password": PASSWORD}
    )
    assert response["Location"] == dash("usage/")
    client.logout()
    response = client.post(
        dash("login/"), {"username": "asha", "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert response["Location"] == dash()


def test_a_wrong_password_is_refused_with_a_message(client: Client, owner: Any) -> None:
    response = sign_in(client, "asha", "wrong")
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert "_auth_user_id" not in client.session


def test_failed_sign_ins_are_throttled_per_username_and_address(client: Client, owner: Any) -> None:
    for _ in range(MAX_FAILURES - 1):
        assert sign_in(client, "asha", "wrong").status_code == 200
    blocked = sign_in(client, "asha", "wrong")
    assert blocked.status_code == 429
    assert b"Too many failed sign-in attempts" in blocked.content
    assert int(blocked["Retry-After"]) > 0
    # Even the right password waits until the window ends.
    assert sign_in(client, "ASHA", PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session
    # Another address is not blocked for the same user.
    other = sign_in(Client(), "asha", PASSWORD, REMOTE_ADDR="10.1.2.3")
    assert other.status_code == 302


def test_a_successful_sign_in_clears_earlier_failures(client: Client, owner: Any) -> None:
    for _ in range(MAX_FAILURES - 1):
        sign_in(client, "asha", "wrong")
    assert sign_in(client, "asha", PASSWORD).status_code == 302
    client.logout()
    for _ in range(MAX_FAILURES - 1):
        assert sign_in(client, "asha", "wrong").status_code == 200


def test_signing_out_needs_a_post(owner_client: Client) -> None:
    assert owner_client.get(dash("logout/")).status_code == 405
    response = owner_client.post(dash("logout/"))
    assert response.status_code == 302 and response["Location"] == dash("login/")
    assert owner_client.get(dash()).status_code == 302


def test_the_password_can_be_changed(owner_client: Client, owner: Any) -> None:
    response = owner_client.post(
        dash("password/"),
        {
            "old_password": PASSWORD,
            "new_password1": "serengeti-migration-77",
            "new_password2": "serengeti-migration-77",
        },
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("serengeti-migration-77")
    assert owner_client.get(dash()).status_code == 200  # this session stays signed in
    assert AuditEvent.objects.filter(action="password.changed", actor=owner).count() == 1


def test_a_wrong_old_password_changes_nothing(owner_client: Client, owner: Any) -> None:
    response = owner_client.post(
        dash("password/"),
        {"old_password": "nope", "new_password1": "x-new-pass-1", "new_password2": "x-new-pass-1"},
    )
    assert response.status_code == 200
    assert b"Your old password was entered incorrectly" in response.content
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)


def test_a_user_without_an_account_is_told_so(make_user: Any) -> None:
    client = Client()
    client.force_login(make_user("lonely"))
    response = client.get(dash())
    assert response.status_code == 403
    assert b"not a member of any account" in response.content
