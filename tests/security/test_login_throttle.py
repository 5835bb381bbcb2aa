"""Sign-in throttles that hold: every attempt is counted before the password is checked, so
parallel guesses cannot slip past the limit."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from integration.members import membership_add
from integration.models import Account
from integration.throttle import MAX_FAILURES, MAX_FAILURES_PER_ADDRESS
from tests.security.guesses import parallel_posts

PASSWORD = "correct horse battery staple 7"
GUESSES = 30


@pytest.fixture
def asha(alice: Account) -> Any:
    user = get_user_model().objects.create_user(username="asha", password=PASSWORD)
    membership_add(user=user, account=alice, role="owner")
    return user


def sign_in(client: Client, username: str, password: str) -> Any:
    return client.post(
        "/api/integration/dashboard/login/", {"username": username, "password": password}
    )


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_passwords_are_counted_before_they_are_checked(asha: Any) -> None:
    statuses, checked = parallel_posts(
        "/api/integration/dashboard/login/", {"username": "asha", "password": "wrong"}, GUESSES
    )
    assert len(statuses) == GUESSES
    assert checked <= MAX_FAILURES, checked
    assert statuses.count(429) >= GUESSES - MAX_FAILURES
    # The right password is refused too while the window lasts.
    assert sign_in(Client(REMOTE_ADDR="203.0.113.50"), "asha", PASSWORD).status_code == 429


@pytest.mark.django_db
def test_one_address_spraying_many_usernames_is_stopped(asha: Any) -> None:
    sprayer = Client(REMOTE_ADDR="203.0.113.60")
    for n in range(MAX_FAILURES_PER_ADDRESS):
        assert sign_in(sprayer, f"user{n}", "Spring2025").status_code in {200, 429}
    response = sign_in(sprayer, "asha", PASSWORD)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    # The user signs in from elsewhere.
    assert sign_in(Client(REMOTE_ADDR="198.51.100.9"), "asha", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_successful_sign_ins_do_not_use_up_the_address(asha: Any) -> None:
    office = Client(REMOTE_ADDR="203.0.113.70")
    for _ in range(MAX_FAILURES_PER_ADDRESS + 5):
        assert sign_in(office, "asha", PASSWORD).status_code == 302
        office.logout()
