"""The activity log: recording, showing and filtering who did what; sender ID requests."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.admin import helpers
from django.contrib.auth.models import AnonymousUser
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.utils import timezone

from integration.audit import Action, action_label, audit_record
from integration.members import membership_add
from integration.models import Account, AuditEvent
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


def test_a_sender_id_request_past_the_limit_is_explained(
    owner_client: Client, alice: Account, settings: Any
) -> None:
    settings.MIFUMO_MAX_PENDING_SENDER_IDS = 1
    SenderId.objects.create(account=alice, value="DUKA")
    response = owner_client.post(dash("sender-ids/request/"), {"value": "SOKO"})
    assert response.status_code == 400
    assert "1 sender ID requests awaiting review" in response.content.decode()
    assert list(SenderId.objects.values_list("value", flat=True)) == ["DUKA"]


def test_a_member_cannot_request_a_sender_id(member_client: Client) -> None:
    assert b"Request a sender ID" not in member_client.get(dash("sender-ids/")).content
    assert member_client.post(dash("sender-ids/request/"), {"value": "DUKA"}).status_code == 403
    assert not SenderId.objects.exists()


def test_a_failed_sign_in_is_logged_in_each_of_the_users_accounts(
    alice: Account, bob: Account, owner: Any
) -> None:
    membership_add(user=owner, account=bob, role="member")
    client = Client(REMOTE_ADDR="197.250.1.9")
    response = client.post(dash("login/"), {"username": "asha", "password": "wrong"})
    assert response.status_code == 200 and b"Please enter a correct username" in response.content
    failed = AuditEvent.objects.filter(action="login.failed")
    assert sorted(e.account.name for e in failed) == ["alice", "bob"]
    assert {(e.target, e.ip, e.actor) for e in failed} == {("asha", "197.250.1.9", None)}
    # An unknown username belongs to no account: nothing to record anywhere.
    client.post(dash("login/"), {"username": "nobody", "password": "wrong"})
    assert AuditEvent.objects.filter(action="login.failed").count() == 2
    assert action_label("login.failed") == "Failed sign-in"


def test_operators_are_shown_as_mifumo_operator_without_their_address(
    owner_client: Client, alice: Account, admin_client: Client
) -> None:
    admin_client.post(
        "/admin/integration/account/",
        {
            "action": "top_up",
            helpers.ACTION_CHECKBOX_NAME: [str(alice.pk)],
            "apply": "1",
            "amount": "250.00",
            "once": "the-page-token",
        },
        REMOTE_ADDR="10.9.8.7",
    )
    event = AuditEvent.objects.get(action="account.top_up")
    assert event.operator and event.ip == "10.9.8.7"  # kept for operators, in Django admin
    page = owner_client.get(dash("activity/")).content.decode()
    assert "Mifumo operator" in page
    assert "10.9.8.7" not in page and ">admin<" not in page
    overview = owner_client.get(dash()).content.decode()
    assert "Mifumo operator · Balance topped up" in overview


def test_operator_commands_are_logged(owner_client: Client, alice: Account) -> None:
    out = io.StringIO()
    call_command("set_account_limits", "alice", "--sms-per-minute", "600", stdout=out)
    call_command("create_api_key", "alice", "--name", "Ops key", stdout=out)
    call_command("top_up", "alice", "10", stdout=out)
    call_command(
        "approve_sender_id", "alice", "DUKA", "--reject", "--reason", "Not your brand", stdout=out
    )
    events = AuditEvent.objects.filter(account=alice).order_by("id")
    assert [(e.action, e.operator, e.actor) for e in events] == [
        ("account.limits_changed", True, None),
        ("api_key.created", True, None),
        ("account.top_up", True, None),
        ("sender_id.rejected", True, None),
    ]
    assert events[0].details == {"sms_per_minute": 600, "via": "set_account_limits command"}
    page = owner_client.get(dash("activity/")).content.decode()
    assert page.count("Mifumo operator") == 4
    senders = owner_client.get(dash("sender-ids/")).content.decode()
    assert "Not your brand" in senders and ">rejected<" in senders


def test_a_rejection_without_a_reason_says_whom_to_ask(
    owner_client: Client, alice: Account
) -> None:
    SenderId.objects.create(account=alice, value="OLDNAME", status=SenderId.Status.REJECTED)
    page = owner_client.get(dash("sender-ids/")).content.decode()
    assert "No reason was given: ask your Mifumo operator." in page
    # Statuses read the same way for every row, the platform default's included.
    assert ">Rejected<" not in page and ">approved<" in page and ">rejected<" in page


def test_the_activity_date_range_must_run_forwards(owner_client: Client, events: None) -> None:
    response = owner_client.get(dash("activity/"), {"start": "2025-03-02", "end": "2025-03-01"})
    assert response.status_code == 200
    assert "“To” is before “From”" in response.content.decode()
