"""API keys from the dashboard: shown once, roles enforced, every change audited."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from integration.auth import InvalidCredentials, authenticate_key
from integration.models import Account, ApiKey, AuditEvent
from integration.services import api_key_create
from tests.dashboard.support import dash

pytestmark = pytest.mark.django_db


def create(client: Client, **fields: Any) -> Any:
    data = {"name": "Billing app", "permission": "write", "mode": "live", "nonce": "n-1"}
    data.update(fields)
    return client.post(dash("keys/create/"), data)


def raw_key_in(response: Any) -> str:
    raw = response.context["raw"]
    assert raw in response.content.decode()
    return str(raw)


def test_the_new_key_is_shown_once_and_works(owner_client: Client, owner: Any) -> None:
    response = create(owner_client)
    assert response.status_code == 200
    raw = raw_key_in(response)
    assert raw.startswith("mif_live_")
    assert b"it is shown only once" in response.content
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get()
    assert authenticate_key(raw) == key
    assert key.created_by == owner and key.permission == "write" and not key.is_test
    # Not in the list, not on any later page, not in the session.
    listing = owner_client.get(dash("keys/"))
    assert raw not in listing.content.decode()
    assert key.prefix in listing.content.decode()
    session = owner_client.session
    assert all(raw not in str(value) for value in session.values())


def test_sending_the_form_again_does_not_mint_or_show_a_key(owner_client: Client) -> None:
    raw = raw_key_in(create(owner_client))
    again = create(owner_client, name="Billing app")
    assert again.status_code == 302 and again["Location"] == dash("keys/")
    assert ApiKey.objects.count() == 1
    page = owner_client.get(dash("keys/")).content.decode()
    assert raw not in page and "cannot be shown again" in page


def test_a_test_key_with_an_expiry_is_created(owner_client: Client) -> None:
    day = (timezone.now() + timedelta(days=10)).date()
    raw = raw_key_in(create(owner_client, mode="test", permission="read", expires_on=day))
    key = ApiKey.objects.get()
    assert raw.startswith("mif_test_") and key.is_test and key.permission == "read"
    assert key.expires_at is not None and key.expires_at.date() == day + timedelta(days=1)


def test_a_key_expiring_on_the_last_day_a_date_can_name_is_created(owner_client: Client) -> None:
    raw = raw_key_in(create(owner_client, expires_on="9999-12-31"))
    key = ApiKey.objects.get()
    assert key.expires_at is not None and key.expires_at.date() == date.max
    assert authenticate_key(raw) == key


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"name": "  "}, b"This field is required"),
        ({"permission": "root"}, b"Select a valid choice"),
        ({"expires_on": "2001-01-01"}, b"The expiry date is in the past"),
    ],
)
def test_bad_input_is_shown_on_the_form(owner_client: Client, fields: Any, error: bytes) -> None:
    response = create(owner_client, **fields)
    assert response.status_code == 400
    assert error in response.content
    assert ApiKey.objects.count() == 0


def test_revoking_stops_the_key_and_is_audited(
    owner_client: Client, alice: Account, owner: Any
) -> None:
    issued = api_key_create(account=alice, name="old")
    response = owner_client.post(dash(f"keys/{issued.api_key.pk}/revoke/"))
    assert response.status_code == 302
    with pytest.raises(InvalidCredentials):
        authenticate_key(issued.raw)
    event = AuditEvent.objects.get(action="api_key.revoked")
    assert event.actor == owner and event.account == alice
    assert event.details["prefix"] == issued.api_key.prefix


def test_rotating_shows_the_new_secret_once_and_kills_the_old(
    owner_client: Client, alice: Account
) -> None:
    issued = api_key_create(account=alice, name="rotating")
    response = owner_client.post(dash(f"keys/{issued.api_key.pk}/rotate/"), {"nonce": "r-1"})
    assert response.status_code == 200
    raw = raw_key_in(response)
    assert raw != issued.raw
    # A new key record replaces the old one.
    replacement = authenticate_key(raw)
    assert replacement.pk != issued.api_key.pk and replacement.name == "rotating"
    assert ApiKey.objects.get(pk=issued.api_key.pk).replaced_by_id == replacement.pk
    with pytest.raises(InvalidCredentials):
        authenticate_key(issued.raw)
    replay = owner_client.post(dash(f"keys/{issued.api_key.pk}/rotate/"), {"nonce": "r-1"})
    assert replay.status_code == 302
    assert authenticate_key(raw).pk == replacement.pk
    assert ApiKey.objects.filter(account=alice).count() == 2
    assert AuditEvent.objects.filter(action="api_key.rotated").count() == 1


def test_a_revoked_key_cannot_be_rotated(owner_client: Client, alice: Account) -> None:
    issued = api_key_create(account=alice, name="gone")
    owner_client.post(dash(f"keys/{issued.api_key.pk}/revoke/"))
    response = owner_client.post(
        dash(f"keys/{issued.api_key.pk}/rotate/"), {"nonce": "r-2"}, follow=True
    )
    assert b"A revoked key cannot be rotated" in response.content


def test_creating_is_audited_without_the_secret(owner_client: Client, owner: Any) -> None:
    raw = raw_key_in(create(owner_client))
    event = AuditEvent.objects.get(action="api_key.created")
    assert event.actor == owner and "Billing app" in event.target
    assert raw not in str(event.details) and raw not in event.target


def test_a_member_sees_keys_but_no_form(member_client: Client, alice: Account) -> None:
    api_key_create(account=alice, name="shared")
    page = member_client.get(dash("keys/"))
    assert page.status_code == 200
    content = page.content.decode()
    assert "shared" in content
    assert 'id="create-key-form"' not in content
    assert "Revoke" not in content and "Rotate" not in content


@pytest.mark.parametrize("action", ["create", "revoke", "rotate"])
def test_a_member_cannot_post_key_changes(
    member_client: Client, alice: Account, action: str
) -> None:
    issued = api_key_create(account=alice, name="shared")
    path = {
        "create": "keys/create/",
        "revoke": f"keys/{issued.api_key.pk}/revoke/",
        "rotate": f"keys/{issued.api_key.pk}/rotate/",
    }[action]
    response = member_client.post(
        dash(path), {"name": "sneaky", "permission": "admin", "mode": "live", "nonce": "m-1"}
    )
    assert response.status_code == 403
    assert b"Only the account" in response.content
    key = ApiKey.objects.get()
    assert key.revoked_at is None and key.rotated_at is None
    assert authenticate_key(issued.raw) == key
