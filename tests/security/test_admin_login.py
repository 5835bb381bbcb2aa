"""Django admin's sign-in is throttled like the dashboard's (per username and address, and
per address), and shares its budget: a guesser gets no extra tries by switching doors."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from integration.throttle import MAX_FAILURES
from tests.security.guesses import parallel_posts

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple 7"
ADMIN_LOGIN = "/admin/login/"
DASHBOARD_LOGIN = "/api/integration/dashboard/login/"


@pytest.fixture
def root() -> Any:
    return get_user_model().objects.create_superuser(
        username="root", password=PASSWORD, email="root@example.com"
    )


def admin_sign_in(client: Client, password: str, username: str = "root") -> Any:
    return client.post(ADMIN_LOGIN, {"username": username, "password": password, "next": "/admin/"})


def test_wrong_admin_passwords_are_throttled_and_then_the_right_one_waits(root: Any) -> None:
    attacker = Client(REMOTE_ADDR="203.0.113.80")
    answers = [admin_sign_in(attacker, f"guess-{n}").status_code for n in range(15)]
    assert answers[: MAX_FAILURES - 1] == [200] * (MAX_FAILURES - 1)
    assert set(answers[MAX_FAILURES - 1 :]) == {429}
    blocked = admin_sign_in(attacker, PASSWORD)
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) > 0
    assert b"Too many failed sign-in attempts" in blocked.content
    assert "_auth_user_id" not in attacker.session
    assert attacker.get("/admin/").status_code == 302

    operator = Client(REMOTE_ADDR="198.51.100.30")
    assert admin_sign_in(operator, PASSWORD).status_code == 302
    assert operator.get("/admin/").status_code == 200


def test_the_dashboard_and_the_admin_share_one_budget(root: Any) -> None:
    attacker = Client(REMOTE_ADDR="203.0.113.81")
    for n in range(MAX_FAILURES - 1):
        data = {"username": "root", "password": f"guess-{n}"}
        assert attacker.post(DASHBOARD_LOGIN, data).status_code == 200
    assert admin_sign_in(attacker, "guess-last").status_code == 429
    assert admin_sign_in(attacker, PASSWORD).status_code == 429


def test_a_successful_admin_sign_in_clears_the_failures(root: Any) -> None:
    operator = Client(REMOTE_ADDR="198.51.100.31")
    for n in range(MAX_FAILURES - 1):
        assert admin_sign_in(operator, f"typo-{n}").status_code == 200
    assert admin_sign_in(operator, PASSWORD).status_code == 302
    operator.logout()
    for n in range(MAX_FAILURES - 1):
        assert admin_sign_in(operator, f"typo-{n}").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_parallel_admin_guesses_are_counted_before_they_are_checked(root: Any) -> None:
    statuses, checked = parallel_posts(ADMIN_LOGIN, {"username": "root", "password": "x"}, 30)
    assert len(statuses) == 30
    assert checked <= MAX_FAILURES, checked
