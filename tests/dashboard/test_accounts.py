"""Working in several accounts: the switch accepts only the user's own memberships."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from integration.members import membership_add
from integration.models import Account, Membership
from integration.services import account_create
from tests.dashboard.support import PASSWORD, dash

pytestmark = pytest.mark.django_db


@pytest.fixture
def second(owner: Any) -> Account:
    account = account_create(name="Duka Ltd", balance="10.00")
    membership_add(user=owner, account=account, role="member")
    return account


def test_the_switch_lists_only_the_users_accounts(
    owner_client: Client, second: Account, bob: Account
) -> None:
    page = owner_client.get(dash()).content.decode()
    assert "Duka Ltd" in page and "alice" in page
    assert "bob" not in page


def test_switching_changes_the_account_and_the_role(owner_client: Client, second: Account) -> None:
    response = owner_client.post(dash("account/switch/"), {"account": second.pk})
    assert response.status_code == 302
    page = owner_client.get(dash("keys/"))
    assert page.context["ws"].account == second
    assert not page.context["ws"].can_manage  # a member there, an owner in alice
    assert b'id="create-key-form"' not in page.content


@pytest.mark.parametrize("forged", ["bob", "missing", "junk"])
def test_an_account_without_membership_cannot_be_forged(
    owner_client: Client, alice: Account, bob: Account, forged: str
) -> None:
    value = {"bob": bob.pk, "missing": 999_999, "junk": "1 OR 1=1"}[forged]
    response = owner_client.post(dash("account/switch/"), {"account": value})
    assert response.status_code == 404
    assert owner_client.get(dash()).context["ws"].account == alice


def test_a_forged_session_account_falls_back_to_a_membership(
    owner_client: Client, alice: Account, bob: Account
) -> None:
    session = owner_client.session
    session["dashboard_account_id"] = bob.pk
    session.save()
    assert owner_client.get(dash()).context["ws"].account == alice


def test_losing_the_membership_loses_the_account(
    owner_client: Client, owner: Any, second: Account
) -> None:
    owner_client.post(dash("account/switch/"), {"account": second.pk})
    Membership.objects.filter(user=owner, account=second).delete()
    assert owner_client.get(dash()).context["ws"].account.name == "alice"


def test_signing_in_opens_the_account_used_last(
    owner_client: Client, owner: Any, second: Account, alice: Account
) -> None:
    # Newer and alphabetically first: neither decides; the last one used does.
    newest = account_create(name="Aaa Newest", balance="0")
    membership_add(user=owner, account=newest, role="owner")
    owner_client.post(dash("account/switch/"), {"account": second.pk})
    fresh = Client()
    fresh.post(dash("login/"), {"username": "asha", "password": PASSWORD})
    assert fresh.get(dash()).context["ws"].account == second
    owner_client.post(dash("account/switch/"), {"account": alice.pk})
    again = Client()
    again.post(dash("login/"), {"username": "asha", "password": PASSWORD})
    assert again.get(dash()).context["ws"].account == alice
    # The switcher still lists the accounts by name.
    names = [m.account.name for m in again.get(dash()).context["ws"].memberships]
    assert names == ["Aaa Newest", "alice", "Duka Ltd"]
