"""The dispatcher's last look: a phone that opted out after its message was accepted, while
the message waited for a dispatcher or in a carrier process's backlog, is failed as
OPTED_OUT and refunded, not sent; so is every recipient of an account suspended meanwhile
(ACCOUNT_SUSPENDED)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from contacts.models import Contact
from contacts.services import contact_set_opted_out
from integration.models import Account, LedgerEntry
from integration.services import account_set_status
from sms import dispatch, routing
from sms.carriers.locmem import LocmemCarrier
from sms.models import Handoff, Recipient
from sms.services import message_send
from webhooks.models import Event

TZ, TZ2 = "+255712345678", "+255754000111"


def opt_out(account: Any, phone: str) -> Contact:
    contact = Contact.objects.create(account=account, name="Asha", phone_number=phone)
    contact_set_opted_out(contact=contact, opted_out=True)
    return contact


def states(message: Any) -> dict[str, tuple[str, str]]:
    rows = Recipient.objects.filter(message=message).values_list("phone", "status", "error_code")
    return {phone: (status, code) for phone, status, code in rows}


@pytest.mark.django_db
def test_a_phone_that_opted_out_while_queued_is_failed_refunded_and_not_sent(
    alice: Any, locmem: type[LocmemCarrier], settings: Any
) -> None:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    message = message_send(
        account=alice, text="Habari", recipients=[TZ, TZ2], webhook_url="http://127.0.0.1:9/hook"
    ).message
    opt_out(alice, TZ)
    report = dispatch.queued_dispatch()
    assert (report.submitted, report.failed) == (1, 1)
    assert [sms.to for sms in locmem.outbox] == [TZ2]
    assert states(message) == {TZ: ("failed", "OPTED_OUT"), TZ2: ("sent", "")}
    refund = LedgerEntry.objects.get(account=alice, kind="refund")
    assert (refund.amount, refund.reference) == (Decimal("10.00"), message.id)
    assert "opted out" in refund.note
    alice.refresh_from_db()
    assert alice.balance == Decimal("4990.00")
    failed = Event.objects.get(message=message, type="message.failed").payload
    assert failed["recipients"] == [{"phone": TZ, "status": "failed", "delivery_time": None}]


@pytest.mark.django_db
def test_an_account_suspended_while_its_send_waits_sends_no_more(
    alice: Any, bob: Any, locmem: type[LocmemCarrier]
) -> None:
    message = message_send(account=alice, text="Habari", recipients=[TZ, TZ2]).message
    other = message_send(account=bob, text="Habari", recipients=[TZ]).message
    opt_out(alice, TZ)
    account_set_status(account=alice, status=Account.Status.SUSPENDED)
    report = dispatch.queued_dispatch()
    assert (report.submitted, report.failed) == (1, 2)
    assert [sms.to for sms in locmem.outbox] == [TZ]
    assert states(message) == {
        TZ: ("failed", "ACCOUNT_SUSPENDED"),
        TZ2: ("failed", "ACCOUNT_SUSPENDED"),
    }
    assert states(other) == {TZ: ("sent", "")}
    alice.refresh_from_db()
    assert alice.balance == Decimal("5000.00")
    refund = LedgerEntry.objects.get(account=alice, kind="refund")
    assert refund.amount == Decimal("20.00") and "suspended" in refund.note


@pytest.mark.django_db
def test_an_opt_out_in_another_account_or_undone_does_not_stop_the_send(
    alice: Any, bob: Any, locmem: type[LocmemCarrier]
) -> None:
    message = message_send(account=alice, text="Habari", recipients=[TZ, TZ2]).message
    opt_out(bob, TZ)
    contact_set_opted_out(contact=opt_out(alice, TZ2), opted_out=False)
    assert dispatch.queued_dispatch().submitted == 2
    assert sorted(sms.to for sms in locmem.outbox) == [TZ, TZ2]
    assert states(message) == {TZ: ("sent", ""), TZ2: ("sent", "")}
    assert not LedgerEntry.objects.filter(kind="refund").exists()


@pytest.mark.django_db
def test_a_phone_that_opted_out_in_a_carrier_process_backlog_is_not_sent(
    alice: Any, locmem: type[LocmemCarrier], settings: Any
) -> None:
    settings.MIFUMO_CARRIERS = {
        **settings.MIFUMO_CARRIERS,
        "bind": {"BACKEND": "sms.carriers.locmem.LocmemCarrier", "DEDICATED_PROCESS": True},
    }
    settings.MIFUMO_CARRIER = "bind"
    routing.clear_cache()
    try:
        message = message_send(account=alice, text="Habari", recipients=[TZ, TZ2]).message
        assert dispatch.queued_dispatch().handed_off == 2
        assert Handoff.objects.count() == 2 and locmem.outbox == []
        opt_out(alice, TZ2)
        report = dispatch.handoff_dispatch(carrier="bind", limit=10)
        assert report is not None and (report.submitted, report.failed) == (1, 1)
    finally:
        routing.clear_cache()
    assert [sms.to for sms in locmem.outbox] == [TZ]
    assert states(message) == {TZ: ("sent", ""), TZ2: ("failed", "OPTED_OUT")}
    alice.refresh_from_db()
    assert alice.balance == Decimal("4990.00")


@pytest.mark.django_db
def test_a_recipient_settled_meanwhile_is_neither_failed_nor_refunded(
    alice: Any, locmem: type[LocmemCarrier]
) -> None:
    """The claim ran out and another dispatcher sent it: the late look changes nothing."""
    message = message_send(account=alice, text="Habari", recipients=[TZ]).message
    slow = dispatch.queued_items(dispatch.claim_queued(10))
    Recipient.objects.filter(message=message).update(status="sent", claimed_at=None)
    opt_out(alice, TZ)
    report = dispatch.deliver(items=slow)
    assert (report.submitted, report.failed) == (0, 0)
    assert locmem.outbox == []
    assert states(message) == {TZ: ("sent", "")}
    assert not LedgerEntry.objects.filter(kind="refund").exists()
