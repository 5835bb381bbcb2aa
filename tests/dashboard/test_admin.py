"""The operators' admin: money moves only through the ledger services, secrets stay hidden,
sender IDs are reviewed with actions, and all of it lands in the account's activity log."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.admin import helpers
from django.test import Client

from integration.admin import AccountAdmin, ApiKeyAdmin
from integration.members import invitation_create
from integration.models import Account, ApiKey, AuditEvent, LedgerEntry, Membership
from integration.services import account_debit, api_key_create, api_key_revoke
from sms.models import PriceRule, SenderId
from sms.sender_ids import sender_id_request
from tests.dashboard.data import make_message, make_request_log

pytestmark = pytest.mark.django_db

ACCOUNTS = "/admin/integration/account/"


def act(client: Client, url: str, action: str, ids: list[Any], **extra: Any) -> Any:
    data = {"action": action, helpers.ACTION_CHECKBOX_NAME: [str(i) for i in ids], **extra}
    if "apply" in data:
        data.setdefault("once", uuid.uuid4().hex)  # the form page's one-time token
    return client.post(url, data)


def test_top_up_asks_for_the_amount_then_writes_a_ledger_row(
    admin_client: Client, admin_user: Any, alice: Account
) -> None:
    form = act(admin_client, ACCOUNTS, "top_up", [alice.pk])
    assert form.status_code == 200
    assert b'name="amount"' in form.content and b"alice" in form.content
    before = LedgerEntry.objects.count()
    done = act(
        admin_client,
        ACCOUNTS,
        "top_up",
        [alice.pk],
        apply="1",
        amount="2500.00",
        reference="MPESA-123",
        note="",
    )
    assert done.status_code == 302
    alice.refresh_from_db()
    assert alice.balance == Decimal("7500.00")
    entry = LedgerEntry.objects.order_by("-id").first()
    assert LedgerEntry.objects.count() == before + 1
    assert entry is not None
    assert (entry.kind, entry.amount, entry.balance_after) == (
        "top_up",
        Decimal("2500.00"),
        Decimal("7500.00"),
    )
    assert entry.reference == "MPESA-123" and entry.created_by == admin_user
    event = AuditEvent.objects.get(action="account.top_up")
    assert event.account == alice and event.actor == admin_user
    assert event.details["amount"] == "2500.00"


def test_a_top_up_posted_twice_from_one_page_moves_the_money_once(
    admin_client: Client, alice: Account
) -> None:
    page = act(admin_client, ACCOUNTS, "top_up", [alice.pk])
    once = page.context["form"]["once"].value()
    assert f'type="hidden" name="once" value="{once}"'.encode() in page.content
    assert b"Once:" not in page.content
    for _ in range(2):
        done = act(admin_client, ACCOUNTS, "top_up", [alice.pk], apply="1", amount="100", once=once)
        assert done.status_code == 302
    alice.refresh_from_db()
    assert alice.balance == Decimal("5100.00")
    assert LedgerEntry.objects.filter(kind="top_up", amount=Decimal("100.00")).count() == 1
    messages = [str(m) for m in done.wsgi_request._messages]
    assert "That form was already applied once: nothing moved again." in messages


def test_a_bad_amount_is_asked_for_again(admin_client: Client, alice: Account) -> None:
    for amount in ["0", "-5", "abc", "10.005"]:
        response = act(admin_client, ACCOUNTS, "top_up", [alice.pk], apply="1", amount=amount)
        assert response.status_code == 200 and b"errorlist" in response.content
        # The form is shown again with what was typed and the selection kept.
        assert f'value="{amount}"'.encode() in response.content
        assert f'name="_selected_action" value="{alice.pk}"'.encode() in response.content
    assert "at most two decimal places" in response.content.decode()
    alice.refresh_from_db()
    assert alice.balance == Decimal("5000.00")


def test_an_adjustment_needs_a_note_and_never_goes_below_zero(
    admin_client: Client, alice: Account, bob: Account
) -> None:
    no_note = act(admin_client, ACCOUNTS, "adjust_balance", [alice.pk], apply="1", amount="-10")
    assert no_note.status_code == 200 and b"This field is required" in no_note.content
    Account.objects.filter(pk=bob.pk).update(balance=Decimal("5.00"))
    response = act(
        admin_client,
        ACCOUNTS,
        "adjust_balance",
        [alice.pk, bob.pk],
        apply="1",
        amount="-100.00",
        note="duplicate payment",
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert alice.balance == Decimal("4900.00") and bob.balance == Decimal("5.00")
    adjustments = LedgerEntry.objects.filter(kind="adjustment")
    assert [(e.account_id, e.amount, e.note) for e in adjustments] == [
        (alice.pk, Decimal("-100.00"), "duplicate payment")
    ]
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("bob: Account balance too low" in m for m in messages)


def test_suspend_and_activate(admin_client: Client, alice: Account) -> None:
    act(admin_client, ACCOUNTS, "suspend", [alice.pk])
    alice.refresh_from_db()
    assert alice.status == "suspended"
    act(admin_client, ACCOUNTS, "activate", [alice.pk])
    alice.refresh_from_db()
    assert alice.status == "active"
    assert list(
        AuditEvent.objects.filter(account=alice).order_by("id").values_list("action", flat=True)
    ) == ["account.suspended", "account.activated"]


def test_limits_are_editable_and_the_balance_is_not(admin_client: Client, alice: Account) -> None:
    page = admin_client.get(f"{ACCOUNTS}{alice.pk}/change/")
    assert b'name="sms_per_minute"' in page.content
    assert b'name="balance"' not in page.content
    response = admin_client.post(
        f"{ACCOUNTS}{alice.pk}/change/",
        {
            "name": "alice",
            "status": "active",
            "sms_per_minute": "500",
            "api_per_hour": "",
            "contacts_per_hour": "",
            "max_message_length": "480",
            "webhook_send_api_key": "on",
            "balance": "999999",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "api_keys-TOTAL_FORMS": "0",
            "api_keys-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    alice.refresh_from_db()
    assert (alice.sms_per_minute, alice.max_message_length) == (500, 480)
    assert alice.balance == Decimal("5000.00")
    event = AuditEvent.objects.get(action="account.limits_changed")
    assert event.details == {"sms_per_minute": 500, "max_message_length": 480}


def test_saving_an_account_keeps_the_money_moved_while_it_was_saved(
    admin_client: Client, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = AccountAdmin.get_object

    def read_then_a_send_is_debited(self: Any, request: Any, *args: Any) -> Any:
        account = read(self, request, *args)
        if request.method == "POST":
            account_debit(account_id=alice.pk, amount=Decimal("10.00"), reference="msg_x")
        return account

    monkeypatch.setattr(AccountAdmin, "get_object", read_then_a_send_is_debited)
    form = {
        "name": "alice",
        "status": "active",
        "sms_per_minute": "500",
        "api_per_hour": "",
        "contacts_per_hour": "",
        "max_message_length": "",
        "webhook_send_api_key": "on",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
    }
    assert admin_client.post(f"{ACCOUNTS}{alice.pk}/change/", form).status_code == 302
    alice.refresh_from_db()
    last = LedgerEntry.objects.filter(account=alice).latest("id")
    assert alice.balance == last.balance_after == Decimal("4990.00")
    assert alice.sms_per_minute == 500


def test_saving_a_key_page_does_not_undo_a_revocation_made_meanwhile(
    admin_client: Client, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = api_key_create(account=alice, name="leaked")
    read = ApiKeyAdmin.get_object

    def read_then_revoked_elsewhere(self: Any, request: Any, *args: Any) -> Any:
        key = read(self, request, *args)
        if request.method == "POST":
            api_key_revoke(api_key=ApiKey.objects.get(pk=issued.api_key.pk))
        return key

    monkeypatch.setattr(ApiKeyAdmin, "get_object", read_then_revoked_elsewhere)
    page = f"/admin/integration/apikey/{issued.api_key.pk}/change/"
    assert admin_client.post(page, {}).status_code == 302
    key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert key.revoked_at is not None and key.encrypted_key == ""


def test_api_keys_never_show_their_secret_material(admin_client: Client, alice: Account) -> None:
    issued = api_key_create(account=alice, name="prod")
    listing = admin_client.get("/admin/integration/apikey/").content.decode()
    detail = admin_client.get(f"/admin/integration/apikey/{issued.api_key.pk}/change/")
    account_page = admin_client.get(f"{ACCOUNTS}{alice.pk}/change/").content.decode()
    for page in (listing, detail.content.decode(), account_page):
        assert issued.api_key.prefix in page
        assert issued.raw not in page
        assert issued.api_key.digest not in page
        assert issued.api_key.encrypted_key not in page
    assert admin_client.get("/admin/integration/apikey/add/").status_code == 403


def test_keys_can_be_revoked_by_an_operator(admin_client: Client, alice: Account) -> None:
    issued = api_key_create(account=alice, name="leaked")
    act(admin_client, "/admin/integration/apikey/", "revoke", [issued.api_key.pk])
    issued.api_key.refresh_from_db()
    assert issued.api_key.revoked_at is not None
    assert AuditEvent.objects.get(action="api_key.revoked").details["by"] == "operator"


def test_the_ledger_is_read_only(admin_client: Client, alice: Account) -> None:
    entry = LedgerEntry.objects.get(account=alice)
    assert admin_client.get("/admin/integration/ledgerentry/").status_code == 200
    assert admin_client.get("/admin/integration/ledgerentry/add/").status_code == 403
    page = admin_client.get(f"/admin/integration/ledgerentry/{entry.pk}/change/")
    assert page.status_code == 200 and b'name="amount"' not in page.content
    assert (
        admin_client.post(f"/admin/integration/ledgerentry/{entry.pk}/delete/").status_code == 403
    )


def test_the_usage_log_is_read_only(admin_client: Client, alice: Account) -> None:
    row = make_request_log(alice, route="sms/send/", status_code=429)
    assert b"sms/send/" in admin_client.get("/admin/integration/apirequestlog/").content
    assert admin_client.get("/admin/integration/apirequestlog/add/").status_code == 403
    delete = admin_client.post(f"/admin/integration/apirequestlog/{row.pk}/delete/")
    assert delete.status_code == 403


def test_sender_ids_are_reviewed_from_a_queue(
    admin_client: Client, admin_user: Any, alice: Account
) -> None:
    waiting = sender_id_request(account=alice, value="DUKA")
    spam = sender_id_request(account=alice, value="FREEMONEY")
    queue = admin_client.get("/admin/sms/senderid/", {"status__exact": "pending"})
    assert b"DUKA" in queue.content and b"FREEMONEY" in queue.content
    senders = "/admin/sms/senderid/"
    asked = act(admin_client, senders, "approve", [waiting.pk])
    assert asked.status_code == 200 and b'name="note"' in asked.content
    act(admin_client, senders, "approve", [waiting.pk], apply="1", note="")
    no_reason = act(admin_client, senders, "reject", [spam.pk], apply="1", note="")
    assert no_reason.status_code == 200 and b"This field is required" in no_reason.content
    assert SenderId.objects.get(value="FREEMONEY").status == "pending"
    act(admin_client, senders, "reject", [spam.pk], apply="1", note="Misleading name")
    statuses = dict(SenderId.objects.values_list("value", "status"))
    assert statuses == {"DUKA": "approved", "FREEMONEY": "rejected"}
    assert SenderId.objects.get(value="DUKA").reviewed_at is not None
    assert SenderId.objects.get(value="FREEMONEY").note == "Misleading name"
    events = AuditEvent.objects.filter(actor=admin_user)
    actions = set(events.values_list("action", "target"))
    assert actions == {("sender_id.approved", "DUKA"), ("sender_id.rejected", "FREEMONEY")}
    assert all(e.operator for e in events)


def test_price_rules_are_editable(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/sms/pricerule/add/",
        {
            "country_code": "254",
            "prefix": "",
            "price_per_segment": "12.50",
            "currency": "TZS",
            "description": "Kenya",
            "active": "on",
        },
    )
    assert response.status_code == 302
    assert PriceRule.objects.get(country_code="254").price_per_segment == Decimal("12.50")


def test_messages_and_recipients_are_searchable_and_read_only(
    admin_client: Client, alice: Account
) -> None:
    message = make_message(alice, phones=["+255712000777"], text="Habari Mwanza")
    other = make_message(alice, phones=["+255754000888"], text="Habari Arusha")
    by_phone = admin_client.get("/admin/sms/message/", {"q": "0712 000 777"}).content.decode()
    assert message.pk in by_phone and other.pk not in by_phone
    by_id = admin_client.get("/admin/sms/message/", {"q": other.pk}).content.decode()
    assert other.pk in by_id and message.pk not in by_id
    recipients = admin_client.get("/admin/sms/recipient/", {"q": "+255754000888"})
    assert b"+255754000888" in recipients.content and b"+255712000777" not in recipients.content
    filtered = admin_client.get("/admin/sms/recipient/", {"message__exact": message.pk})
    assert filtered.status_code == 200 and b"+255712000777" in filtered.content
    assert admin_client.get("/admin/sms/message/add/").status_code == 403
    detail = admin_client.get(f"/admin/sms/message/{message.pk}/change/")
    assert detail.status_code == 200 and b"Habari Mwanza" in detail.content
    assert b'name="text"' not in detail.content


def test_membership_changes_are_audited(
    admin_client: Client, alice: Account, owner: Any, make_user: Any
) -> None:
    newcomer = make_user("neema")
    existing = alice.memberships.get()
    response = admin_client.post(
        f"{ACCOUNTS}{alice.pk}/change/",
        {
            "name": "alice",
            "status": "active",
            "webhook_send_api_key": "on",
            "memberships-TOTAL_FORMS": "2",
            "memberships-INITIAL_FORMS": "1",
            "memberships-0-id": str(existing.pk),
            "memberships-0-account": str(alice.pk),
            "memberships-0-user": str(owner.pk),
            "memberships-0-role": "admin",
            "memberships-1-account": str(alice.pk),
            "memberships-1-user": str(newcomer.pk),
            "memberships-1-role": "member",
            "api_keys-TOTAL_FORMS": "0",
            "api_keys-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    audited = dict(
        AuditEvent.objects.filter(action="membership.changed").values_list("target", "details")
    )
    assert audited == {"asha": {"role": "admin"}, "neema": {"role": "member"}}


def test_the_activity_log_is_readable_by_operators(admin_client: Client, alice: Account) -> None:
    act(admin_client, ACCOUNTS, "suspend", [alice.pk])
    page = admin_client.get("/admin/dashboard/auditevent/")
    assert page.status_code == 200 and b"Account suspended" in page.content
    assert admin_client.get("/admin/dashboard/auditevent/add/").status_code == 403


def test_operators_see_invitations_and_who_acted(
    admin_client: Client, alice: Account, admin_user: Any
) -> None:
    invitation_create(account=alice, email="neema@example.com", role="admin", invited_by=None)
    listing = admin_client.get("/admin/integration/invitation/")
    assert b"neema@example.com" in listing.content and b"pending" in listing.content
    assert admin_client.get("/admin/integration/invitation/add/").status_code == 403
    act(admin_client, ACCOUNTS, "suspend", [alice.pk])
    log = admin_client.get("/admin/dashboard/auditevent/", {"operator__exact": "1"})
    assert b"Account suspended" in log.content


MEMBERSHIPS = "/admin/integration/membership/"


def membership_log() -> list[tuple[str, str, dict[str, Any], bool]]:
    return list(
        AuditEvent.objects.filter(action="membership.changed")
        .order_by("id")
        .values_list("account__name", "target", "details", "operator")
    )


def test_memberships_added_changed_and_deleted_on_their_own_pages_are_audited(
    admin_client: Client, admin_user: Any, alice: Account, owner: Any, make_user: Any
) -> None:
    newcomer = make_user("neema")
    added = admin_client.post(
        f"{MEMBERSHIPS}add/", {"user": newcomer.pk, "account": alice.pk, "role": "admin"}
    )
    assert added.status_code == 302, added.content[:3000]
    membership = Membership.objects.get(user=newcomer)
    changed = admin_client.post(f"{MEMBERSHIPS}{membership.pk}/change/", {"role": "member"})
    assert changed.status_code == 302, changed.content[:3000]
    # Saved again unchanged: nothing to log.
    admin_client.post(f"{MEMBERSHIPS}{membership.pk}/change/", {"role": "member"})
    deleted = admin_client.post(f"{MEMBERSHIPS}{membership.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not Membership.objects.filter(user=newcomer).exists()
    assert membership_log() == [
        ("alice", "neema", {"role": "admin"}, True),
        ("alice", "neema", {"role": "member"}, True),
        ("alice", "neema", {"removed": True}, True),
    ]
    assert set(AuditEvent.objects.values_list("actor", flat=True)) == {admin_user.pk}


def test_memberships_deleted_from_the_list_are_audited_each(
    admin_client: Client, alice: Account, bob: Account, make_user: Any
) -> None:
    ids = [
        Membership.objects.get(user=make_user(name, account, "member")).pk
        for name, account in [("neema", alice), ("juma", bob)]
    ]
    response = act(admin_client, MEMBERSHIPS, "delete_selected", ids, post="yes")
    assert response.status_code == 302 and not Membership.objects.filter(pk__in=ids).exists()
    assert sorted(membership_log()) == [
        ("alice", "neema", {"removed": True}, True),
        ("bob", "juma", {"removed": True}, True),
    ]


def test_an_owner_an_operator_demotes_loses_their_invitations(
    admin_client: Client, alice: Account, owner: Any, make_user: Any
) -> None:
    make_user("juma", alice, "owner")
    invitation, _ = invitation_create(
        account=alice, email="friend@example.com", role="owner", invited_by=owner
    )
    mine = Membership.objects.get(user=owner)
    assert (
        admin_client.post(f"{MEMBERSHIPS}{mine.pk}/change/", {"role": "admin"}).status_code == 302
    )
    invitation.refresh_from_db()
    assert invitation.status == "revoked"
    revoked = AuditEvent.objects.get(action="invitation.revoked")
    assert (revoked.target, revoked.details, revoked.operator) == (
        "friend@example.com",
        {"invited_by": "asha"},
        True,
    )


def test_a_membership_keeps_its_user_and_account(
    admin_client: Client, alice: Account, bob: Account, owner: Any, make_user: Any
) -> None:
    mine = Membership.objects.get(user=owner)
    other = make_user("juma")
    admin_client.post(
        f"{MEMBERSHIPS}{mine.pk}/change/", {"user": other.pk, "account": bob.pk, "role": "owner"}
    )
    mine.refresh_from_db()
    assert (mine.user_id, mine.account_id) == (owner.pk, alice.pk)
