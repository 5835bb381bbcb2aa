"""Claim leases: a slow dispatcher keeps its claim; one whose claim ran out sends nothing of
what the sweep took back or another dispatcher claimed since."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from integration.models import LedgerEntry
from sms import dispatch
from sms.carriers.base import DeliveryReceipt, DeliveryStatus, SubmitResult
from sms.carriers.locmem import LocmemCarrier
from sms.dispatch import failover
from sms.models import Recipient
from sms.receipts import receipts_ingest
from sms.services import message_send
from sms.throttle import Throttle, carrier_rate
from webhooks.models import Event

TZ, TZ2 = "+255712345678", "+255754000111"
LEASE = 2  # seconds; a claim is renewed once a third of it has gone, a wait for the cap
# is at most a second


def past_the_lease() -> Any:
    return timezone.now() + timedelta(seconds=LEASE + 1)


def let_the_claim_age() -> None:
    time.sleep(LEASE / 3 + 0.05)


@pytest.fixture
def short_lease(settings: Any, locmem: type[LocmemCarrier]) -> type[LocmemCarrier]:
    settings.MIFUMO_CLAIM_LEASE_SECONDS = LEASE
    return locmem


@pytest.mark.django_db
def test_a_claim_taken_back_and_claimed_again_is_sent_by_the_new_holder_only(
    alice: Any, short_lease: type[LocmemCarrier]
) -> None:
    message = message_send(account=alice, text="Habari", recipients=[TZ]).message
    slow = dispatch.queued_items(dispatch.claim_queued(500))  # dispatcher A
    let_the_claim_age()
    assert dispatch.stuck_messages(now=past_the_lease()) == [message.id]  # A seemed dead
    assert dispatch.queued_dispatch().submitted == 1  # dispatcher B
    report = dispatch.deliver(items=slow)  # A carries on
    assert report.submitted == 0 and report.failed == 0
    assert [sms.to for sms in short_lease.outbox] == [TZ]
    recipient = Recipient.objects.get()
    assert (recipient.status, recipient.attempts) == ("sent", 2)


@pytest.mark.django_db
def test_a_claim_taken_back_is_left_queued_for_the_next_dispatcher(
    alice: Any, short_lease: type[LocmemCarrier]
) -> None:
    message_send(account=alice, text="Habari", recipients=[TZ, TZ2])
    slow = dispatch.queued_items(dispatch.claim_queued(500))
    let_the_claim_age()
    dispatch.stuck_messages(now=past_the_lease())
    assert dispatch.deliver(items=slow).submitted == 0
    assert short_lease.outbox == []
    assert set(Recipient.objects.values_list("status", flat=True)) == {"queued"}
    assert dispatch.queued_dispatch().submitted == 2
    assert sorted(sms.to for sms in short_lease.outbox) == [TZ, TZ2]


@pytest.mark.django_db
def test_a_dispatcher_waiting_on_a_carrier_cap_keeps_its_claim_past_the_lease(
    alice: Any, short_lease: type[LocmemCarrier], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two recipients a second for ten recipients: more than one and a half leases long. The
    sweep runs whenever the dispatcher waits for the cap, and never finds its claim expired."""
    settings.MIFUMO_CARRIERS = {
        **settings.MIFUMO_CARRIERS,
        "locmem": {"BACKEND": "sms.carriers.locmem.LocmemCarrier", "RATE": 2},
    }
    swept: list[list[str]] = []

    def sleep_then_sweep(seconds: float) -> None:
        time.sleep(seconds)
        swept.append(dispatch.stuck_messages())

    def throttle_for(carrier: str) -> Throttle | None:
        rate = carrier_rate(carrier)
        return Throttle(carrier, rate, sleep=sleep_then_sweep) if rate else None

    monkeypatch.setattr(failover, "throttle_for", throttle_for)
    phones = [f"+2557120000{n:02d}" for n in range(10)]
    message_send(account=alice, text="Habari", recipients=phones)
    started = time.monotonic()
    assert dispatch.queued_dispatch().submitted == 10
    assert time.monotonic() - started > 1.5 * LEASE
    assert len(swept) >= 2 and not any(swept)
    assert sorted(sms.to for sms in short_lease.outbox) == phones
    rows = Recipient.objects.values_list("status", "attempts")
    assert set(rows) == {("sent", 1)}


# -- a result recorded after the claim ran out ---------------------------------------------


def late(recipient: Recipient, accepted: bool) -> dispatch.DispatchReport:
    """What a dispatcher whose claim ran out during the carrier's call records afterwards."""
    if accepted:
        result = SubmitResult(recipient.id, True, ("late-id",))
    else:
        result = SubmitResult(recipient.id, False, (), "INVALID_DEST", "bad number", True)
    return dispatch.results_record([(recipient.message, "locmem", [result])])


@pytest.mark.django_db
def test_a_late_acceptance_leaves_a_delivered_recipient_delivered(
    alice: Any, locmem: type[LocmemCarrier], settings: Any
) -> None:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    message_send(
        account=alice, text="Habari", recipients=[TZ], webhook_url="http://127.0.0.1:9/hook"
    )
    assert dispatch.queued_dispatch().submitted == 1
    recipient = Recipient.objects.get()
    receipt = DeliveryReceipt(
        "locmem", recipient.carrier_message_id, DeliveryStatus.DELIVERED, timezone.now()
    )
    receipts_ingest(receipts=[receipt])
    assert late(recipient, accepted=True).submitted == 0
    after = Recipient.objects.get()
    assert (after.status, after.carrier_message_id) == ("delivered", recipient.carrier_message_id)
    events = Event.objects.order_by("created_at").values_list("type", flat=True)
    assert list(events) == ["message.sent", "message.delivered"]


@pytest.mark.django_db
def test_a_late_rejection_of_a_failed_recipient_is_not_refunded_again(
    alice: Any, locmem: type[LocmemCarrier]
) -> None:
    message_send(account=alice, text="Habari", recipients=[TZ])
    locmem.reject = {TZ: ("INVALID_DEST", True)}
    assert dispatch.queued_dispatch().failed == 1
    alice.refresh_from_db()
    balance = alice.balance
    assert late(Recipient.objects.get(), accepted=False).failed == 0
    alice.refresh_from_db()
    assert alice.balance == balance
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REFUND).count() == 1


@pytest.mark.django_db
def test_a_late_acceptance_of_a_recipient_taken_back_marks_it_sent_so_it_is_not_sent_again(
    alice: Any, short_lease: type[LocmemCarrier]
) -> None:
    message_send(account=alice, text="Habari", recipients=[TZ])
    dispatch.claim_queued(500)
    dispatch.stuck_messages(now=past_the_lease())
    recipient = Recipient.objects.get()
    assert recipient.status == "queued"
    assert late(recipient, accepted=True).submitted == 1
    assert Recipient.objects.get().status == "sent"
    assert dispatch.queued_dispatch().submitted == 0
    assert short_lease.outbox == []


@pytest.mark.django_db
@pytest.mark.parametrize("permanent", [True, False])
def test_a_rejection_of_a_recipient_another_dispatcher_claimed_meanwhile_is_left_to_it(
    alice: Any,
    locmem: type[LocmemCarrier],
    monkeypatch: pytest.MonkeyPatch,
    permanent: bool,
) -> None:
    """A's carrier call outlived its claim: the sweep took the recipient back and B claimed
    it. A's rejection arriving then neither fails, refunds nor requeues what B is sending."""
    message_send(account=alice, text="Habari", recipients=[TZ])
    b_token = timezone.now() + timedelta(seconds=5)
    post = LocmemCarrier.post_to_carrier

    def taken_over_during_the_call(self: Any, payload: Any, batch: Any) -> Any:
        Recipient.objects.update(status="submitting", claimed_at=b_token)  # B's claim
        return post(self, payload, batch)

    monkeypatch.setattr(LocmemCarrier, "post_to_carrier", taken_over_during_the_call)
    locmem.reject = {TZ: ("INVALID_DEST" if permanent else "THROTTLED", permanent)}
    report = dispatch.queued_dispatch()
    assert (report.failed, report.submitted) == (0, 0)
    recipient = Recipient.objects.get()
    assert (recipient.status, recipient.claimed_at) == ("submitting", b_token)
    assert recipient.error_code == ""
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REFUND).exists()
