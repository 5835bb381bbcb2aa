"""The activity log: recording, showing and filtering who did what; sender ID requests."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client, RequestFactory
from django.utils import timezone

from dashboard.audit import Action, action_label, audit_record
from dashboard.models import AuditEvent
from integration.models import Account
from sms.models import SenderId
from tests.dashboard.support import dash

pytestmark = pytest.mark.django_db


def test_audit_record_keeps_actor_target_details_and_address(alice: Account, owner: Any) -> None:
    request = RequestFactory().post("/", REMOTE_ADDR="197.250.1.2")
    event = audit_record(
        account=alice,
        actor=owner,
        action=Action.ACCOUNT_TOPPED_UP,
        target=alice,
        details={"amount": Decimal("100.50"), "when": timezone.now(), "tags": ("a", 1)},
        request=request,
    )
    event.refresh_from_db()
    assert event.actor == owner and event.target == "alice" and event.ip == "197.250.1.2"
    assert event.details["amount"] == "100.50" and event.details["tags"] == ["a", 1]


def test_audit_record_accepts_no_actor_and_no_request(alice: Account) -> None:
    event = audit_record(account=alice.pk, actor=AnonymousUser(), action="api_key.created")
    assert event.actor is None and event.ip is None and event.details == {}
    assert action_label("api_key.created") == "Created API key"
    assert action_label("something.new") == "something.new"


def test_a_bad_client_address_is_dropped(alice: Account) -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="not-an-ip")
    assert audit_record(account=alice, actor=None, action="x", request=request).ip is None


@pytest.fixture
def events(alice: Account, bob: Account, owner: Any, member: Any) -> None:
    audit_record(account=alice, actor=owner, action=Action.API_KEY_CREATED, target="Billing")
    audit_record(account=alice, actor=owner, action=Action.API_KEY_REVOKED, target="Old key")
    audit_record(account=alice, actor=member, action=Action.LOGIN, target="baraka")
    audit_record(account=alice, actor=None, action=Action.WEBHOOK_CREATED, target="whk_1")
    old = audit_record(account=alice, actor=owner, action=Action.LOGIN, target="asha")
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    audit_record(account=bob, actor=None, action=Action.LOGIN, target="bob's secret")


def targets(client: Client, **params: Any) -> list[str]:
    response = client.get(dash("activity/"), params)
    assert response.status_code == 200
    return [e.target for e in response.context["page"].object_list]


def test_the_log_is_newest_first_and_only_this_account(owner_client: Client, events: None) -> None:
    assert targets(owner_client) == ["whk_1", "baraka", "Old key", "Billing", "asha"]


def test_filters(owner_client: Client, events: None, member: Any) -> None:
    assert targets(owner_client, action="api_key") == ["Old key", "Billing"]
    assert targets(owner_client, action="api_key.revoked") == ["Old key"]
    assert targets(owner_client, actor=member.pk) == ["baraka"]
    assert targets(owner_client, q="key") == ["Old key"]
    today = timezone.now().date().isoformat()
    assert "asha" not in targets(owner_client, start=today)
    old = (timezone.now() - timedelta(days=10)).date().isoformat()
    assert targets(owner_client, start=old, end=old) == ["asha"]


def test_a_member_sees_the_log(member_client: Client, events: None) -> None:
    assert len(targets(member_client)) == 5


def test_requesting_a_sender_id(owner_client: Client, alice: Account, owner: Any) -> None:
    response = owner_client.post(
        dash("sender-ids/request/"), {"value": "DUKA", "purpose": "Order updates"}
    )
    assert response.status_code == 302
    sender = SenderId.objects.get()
    assert (sender.account, sender.value, sender.status) == (alice, "DUKA", "pending")
    page = owner_client.get(dash("sender-ids/")).content.decode()
    assert "DUKA" in page and "Order updates" in page
    event = AuditEvent.objects.get(action="sender_id.requested")
    assert event.actor == owner and event.target == "DUKA"


@pytest.mark.parametrize(
    ("value", "error"),
    [("NOT VALID ID!!", "A sender ID is up to 11"), ("MIFUMO", "already approved")],
)
def test_a_bad_sender_id_request_is_explained(owner_client: Client, value: str, error: str) -> None:
    response = owner_client.post(dash("sender-ids/request/"), {"value": value})
    assert response.status_code == 400 and error in response.content.decode()


def test_a_member_cannot_request_a_sender_id(member_client: Client) -> None:
    assert b"Request a sender ID" not in member_client.get(dash("sender-ids/")).content
    assert member_client.post(dash("sender-ids/request/"), {"value": "DUKA"}).status_code == 403
    assert not SenderId.objects.exists()
