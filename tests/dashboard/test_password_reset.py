"""Password reset by e-mail: a one-time link to the login's address, never saying whether
an address has a login, and limited per client address."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from integration.models import AuditEvent
from tests.dashboard.support import PASSWORD, dash

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "serengeti-plains-77"


@pytest.fixture
def asha(owner: Any) -> Any:
    owner.email = "asha@example.com"
    owner.save()
    return owner


def ask(client: Client, email: str) -> Any:
    return client.post(dash("password/reset/"), {"email": email})


def link_in_mail() -> str:
    [message] = mail.outbox
    found = re.search(r"https?://\S+/password/reset/\S+/\S+/", str(message.body))
    assert found is not None, message.body
    return urlsplit(found.group(0)).path


def test_a_reset_link_sets_a_new_password_once(asha: Any, alice: Any) -> None:
    client = Client()
    assert b"Forgot your password?" in client.get(dash("login/")).content
    response = ask(client, "ASHA@example.com")
    assert response.status_code == 302 and response["Location"] == dash("password/reset/sent/")
    assert mail.outbox[0].to == ["asha@example.com"]
    assert mail.outbox[0].subject == "Reset your Mifumo SMS password"
    link = link_in_mail()
    form = client.get(link, follow=True)
    assert b"Choose a new password" in form.content
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert b"Your password is changed" in done.content
    asha.refresh_from_db()
    assert asha.check_password(NEW_PASSWORD) and not asha.check_password(PASSWORD)
    event = AuditEvent.objects.get(action="password.reset")
    assert event.account == alice and event.actor == asha
    # Used once: the same link now says so.
    assert b"already used or has expired" in Client().get(link, follow=True).content


def test_an_unknown_address_looks_the_same_and_sends_nothing(asha: Any) -> None:
    response = ask(Client(), "nobody@example.com")
    assert response.status_code == 302 and response["Location"] == dash("password/reset/sent/")
    assert mail.outbox == []


def test_reset_mails_are_limited_per_address(asha: Any) -> None:
    client = Client()
    for _ in range(7):
        assert ask(client, "asha@example.com").status_code == 302
    assert len(mail.outbox) == 5


def test_a_forged_link_changes_nothing(asha: Any) -> None:
    page = Client().get(dash("password/reset/MQ/forged-token/"))
    assert b"already used or has expired" in page.content
    asha.refresh_from_db()
    assert asha.check_password(PASSWORD)
    assert get_user_model().objects.count() == 1
