"""The low-balance alert: a debit that takes the balance below the account's threshold
writes an account.low_balance event to the outbox in the debit's transaction (signed and
retried like the message events, only to endpoints that subscribe to it), mails the owners
and admins after commit, and notes it in the activity log. Once per crossing."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core import mail
from django.db import transaction

from integration.models import Account, AuditEvent
from integration.services import (
    account_adjust,
    account_debit,
    account_refund,
    account_set_low_balance_threshold,
    account_top_up,
)
from mifumo.errors import DomainError
from tests.helpers import assert_envelope
from tests.webhooks.receiver import Answer
from webhooks import signing
from webhooks.delivery import delivery_attempt
from webhooks.endpoints import endpoint_create
from webhooks.models import Delivery, Endpoint, Event

pytestmark = pytest.mark.django_db

LOW = "account.low_balance"
SEND = {"message": "Habari", "recipients": ["+255712345678", "+255754000001"]}


@pytest.fixture
def make_user_with_email(db):
    from django.contrib.auth import get_user_model

    from integration.members import membership_add

    def make(username, email, account, role):
        user = get_user_model().objects.create_user(username=username, email=email)
        membership_add(user=user, account=account, role=role)
        return user

    return make


def _threshold(account: Account, value: str | None) -> None:
    account_set_low_balance_threshold(account=account, threshold=value)


def test_a_send_below_the_threshold_signs_and_delivers_the_event_and_mails_the_owners(
    alice, api, receiver, make_user_with_email, django_capture_on_commit_callbacks
):
    make_user_with_email("asha", "asha@example.com", alice, "owner")
    make_user_with_email("juma", "juma@example.com", alice, "admin")
    make_user_with_email("baraka", "baraka@example.com", alice, "member")
    endpoint = endpoint_create(account=alice, url=receiver.url)
    _threshold(alice, "4990.00")

    with django_capture_on_commit_callbacks(execute=True):
        assert_envelope(api.post("sms/send/", SEND), 200)

    [hit] = [r for r in receiver.requests if r.header("X-Mifumo-Event") == LOW]
    body = hit.json()
    assert list(body) == ["event_id", "event", "created_at", "balance", "threshold", "currency"]
    assert (body["event"], body["balance"], body["threshold"], body["currency"]) == (
        LOW,
        4980.0,
        4990.0,
        "TZS",
    )
    event = Event.objects.get(type=LOW)
    assert body["event_id"] == event.pk and event.message_id is None
    timestamp = int(hit.header("X-Mifumo-Signature").split(",")[0].removeprefix("t="))
    assert f"v1={signing.signature(endpoint.secret, timestamp, hit.body)}" in hit.header(
        "X-Mifumo-Signature"
    )
    assert hit.header("Authorization") is None  # no key sent this event
    assert Delivery.objects.get(event=event).status == "succeeded"

    [alert] = mail.outbox
    assert sorted(alert.to) == ["asha@example.com", "juma@example.com"]
    assert "alice" in alert.subject and "4990.00" in alert.subject
    assert "4980.00 TZS" in alert.body and "/api/integration/dashboard/billing/" in alert.body
    logged = AuditEvent.objects.get(account=alice, action=LOW)
    assert logged.details == {"balance": "4980.00", "threshold": "4990.00"}


def test_the_alert_is_sent_once_per_crossing(
    alice, api, make_user_with_email, django_capture_on_commit_callbacks
):
    make_user_with_email("asha", "asha@example.com", alice, "owner")
    endpoint_create(account=alice, url="http://127.0.0.1:9/hook")
    _threshold(alice, "4990.00")
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            assert_envelope(api.post("sms/send/", SEND), 200)
    assert Event.objects.filter(type=LOW).count() == 1
    assert len(mail.outbox) == 1

    # Back above the threshold, the next fall alerts again.
    account_top_up(account=alice, amount="100.00")
    with django_capture_on_commit_callbacks(execute=True):
        assert_envelope(api.post("sms/send/", SEND), 200)
    assert Event.objects.filter(type=LOW).count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(4):
            assert_envelope(api.post("sms/send/", SEND), 200)
    assert Event.objects.filter(type=LOW).count() == 2
    assert len(mail.outbox) == 2
    balances = [json.loads(e.body)["balance"] for e in Event.objects.filter(type=LOW)]
    assert sorted(balances) == [4980.0, 4980.0]


def test_refunds_around_the_threshold_do_not_alert_again(alice):
    """A send refunded (cancelled, rejected) and sent again near the threshold crosses it
    each time; the alert went out once, and only a top-up or an adjustment back to the
    threshold sends it again."""
    endpoint_create(account=alice, url="http://127.0.0.1:9/hook")
    _threshold(alice, "4995.00")
    for _ in range(3):
        account_debit(account_id=alice.pk, amount=Decimal("10.00"), reference="msg_x")
        account_refund(account_id=alice.pk, amount=Decimal("10.00"), reference="msg_x")
    assert Event.objects.filter(type=LOW).count() == 1
    assert AuditEvent.objects.filter(action="account.low_balance").count() == 1
    account_debit(account_id=alice.pk, amount=Decimal("10.00"), reference="msg_y")  # 4990
    account_top_up(account=alice, amount="1.00")  # 4991: not back to the threshold
    account_refund(account_id=alice.pk, amount=Decimal("10.00"), reference="msg_y")  # 5001
    account_debit(account_id=alice.pk, amount=Decimal("10.00"), reference="msg_z")  # 4991
    assert Event.objects.filter(type=LOW).count() == 1
    account_adjust(account=alice, amount="5.00", note="goodwill")  # 4996: back above it
    account_debit(account_id=alice.pk, amount=Decimal("10.00"), reference="msg_w")  # 4986
    assert Event.objects.filter(type=LOW).count() == 2


def test_a_new_threshold_alerts_at_its_first_crossing(alice):
    endpoint_create(account=alice, url="http://127.0.0.1:9/hook")
    _threshold(alice, "4995.00")
    account_debit(account_id=alice.pk, amount=Decimal("10.00"), reference="msg_x")
    _threshold(alice, "4980.00")
    account_debit(account_id=alice.pk, amount=Decimal("10.00"), reference="msg_y")
    assert Event.objects.filter(type=LOW).count() == 1
    account_debit(account_id=alice.pk, amount=Decimal("10.00"), reference="msg_z")
    assert Event.objects.filter(type=LOW).count() == 2


def test_only_endpoints_that_subscribe_get_it(alice):
    wants = endpoint_create(account=alice, url="http://127.0.0.1:9/a", events=[LOW])
    endpoint_create(account=alice, url="http://127.0.0.1:9/b", events=["message.delivered"])
    endpoint_create(account=alice, url="http://127.0.0.1:9/c", active=False)
    _threshold(alice, "100.00")
    account_debit(account_id=alice.pk, amount=Decimal("4950.00"), reference="msg_x")
    delivery = Delivery.objects.get()
    assert delivery.endpoint_id == wants.pk and delivery.event.type == LOW


def test_an_operator_adjustment_that_crosses_alerts_too(alice):
    endpoint_create(account=alice, url="http://127.0.0.1:9/a")
    _threshold(alice, "1000.00")
    account_adjust(account=alice, amount="-4500.00", note="correction")
    assert Event.objects.filter(type=LOW).count() == 1
    # Credit never alerts, even when the balance stays below the threshold.
    account_top_up(account=alice, amount="10.00")
    assert Event.objects.filter(type=LOW).count() == 1


def test_no_threshold_no_alert_and_a_test_key_never_debits(
    alice, api, api_for, make_user_with_email, django_capture_on_commit_callbacks
):
    make_user_with_email("asha", "asha@example.com", alice, "owner")
    endpoint_create(account=alice, url="http://127.0.0.1:9/hook")
    with django_capture_on_commit_callbacks(execute=True):
        assert_envelope(api.post("sms/send/", SEND), 200)
    _threshold(alice, "4980.00")
    test_api = api_for(alice, test=True)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            assert_envelope(test_api.post("sms/send/", SEND), 200)
    assert not Event.objects.filter(type=LOW).exists()
    assert mail.outbox == []


def test_a_rolled_back_debit_leaves_no_event_no_mail_and_no_log(
    alice, make_user_with_email, django_capture_on_commit_callbacks
):
    make_user_with_email("asha", "asha@example.com", alice, "owner")
    endpoint_create(account=alice, url="http://127.0.0.1:9/hook")
    _threshold(alice, "4990.00")
    written = []

    def send_that_fails_after_the_debit() -> None:
        with transaction.atomic():
            account_debit(account_id=alice.pk, amount=Decimal("20.00"), reference="msg_x")
            written.append(Event.objects.filter(type=LOW).count())
            raise RuntimeError("the send failed after the debit")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        send_that_fails_after_the_debit()
    assert written == [1]  # the event was written with the debit, then rolled back with it
    assert not Event.objects.filter(type=LOW).exists()
    assert not Delivery.objects.exists()
    assert not AuditEvent.objects.filter(action=LOW).exists()
    assert mail.outbox == []
    alice.refresh_from_db()
    assert alice.balance == Decimal("5000.00")


def test_a_failed_delivery_is_retried(alice, receiver):
    receiver.then(Answer(status=503))
    endpoint_create(account=alice, url=receiver.url, events=[LOW])
    _threshold(alice, "4990.00")
    account_debit(account_id=alice.pk, amount=Decimal("20.00"), reference="msg_x")
    delivery = Delivery.objects.get()
    first = delivery_attempt(delivery_id=delivery.pk)
    assert first is not None and first.status_code == 503
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.next_attempt_at is not None
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)
    delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 2


def test_the_threshold_must_be_positive_or_empty(alice):
    for bad in ["0", "-5"]:
        with pytest.raises(DomainError) as caught:
            _threshold(alice, bad)
        assert caught.value.details == {
            "threshold": ["Must be greater than zero; leave it empty to turn the alert off"]
        }
    _threshold(alice, "12.5")
    alice.refresh_from_db()
    assert alice.low_balance_threshold == Decimal("12.50")
    _threshold(alice, None)
    alice.refresh_from_db()
    assert alice.low_balance_threshold is None


def test_endpoints_subscribe_to_it_through_the_api(api):
    body = {"url": "http://127.0.0.1:9/hook", "events": [LOW]}
    created = assert_envelope(api.post("webhooks/", body), 201)["data"]
    assert created["events"] == [LOW]
    assert Endpoint.objects.get().events == [LOW]
    refused = api.post("webhooks/", {"url": "http://127.0.0.1:9/x", "events": ["account.nope"]})
    assert_envelope(refused, 400, "VALIDATION_ERROR")


def test_test_endpoints_never_get_it_and_test_keys_never_see_it(alice, api, api_for):
    # Only live traffic moves money: the alert is live, whatever a test endpoint asks for.
    live = endpoint_create(account=alice, url="http://127.0.0.1:9/live", events=[LOW])
    test_api = api_for(alice, test=True)
    made = test_api.post("webhooks/", {"url": "http://127.0.0.1:9/test", "events": [LOW]})
    assert assert_envelope(made, 201)["data"]["mode"] == "test"
    _threshold(alice, "100.00")
    account_debit(account_id=alice.pk, amount=Decimal("4950.00"), reference="msg_x")
    delivery = Delivery.objects.select_related("event").get()
    assert delivery.endpoint_id == live.pk
    assert (delivery.event.type, delivery.event.is_test) == (LOW, False)
    seen = assert_envelope(test_api.get("webhooks/deliveries/"), 200)["data"]
    assert LOW not in json.dumps(seen)
    assert LOW in json.dumps(assert_envelope(api.get("webhooks/deliveries/"), 200)["data"])
