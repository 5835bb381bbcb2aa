"""The SMS resource and the balance against a real server: typed results, pagination across
pages, waiting for delivery, scheduling and canceling, sender IDs, idempotency keys."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from mifumo_client import ConflictError, Mifumo
from mifumo_client.models import DeliveryReport, Message, RecipientStatus, SendResult
from mifumo_server import Server

from integration.models import Account
from sms.models import Message as MessageRow
from sms.models import SenderId

pytestmark = pytest.mark.slow

NETWORKS = ["754", "765", "784"]


def phones(count: int, network: str = "754") -> list[str]:
    # Ending in 5: never one of the simulator's special endings.
    return [f"+255{network}{n:05d}5" for n in range(count)]


def test_send_answers_a_typed_result_and_debits_the_balance_exactly(client: Mifumo) -> None:
    before = client.balance()
    sent = client.sms.send("Habari kutoka Mifumo", ["0712345675", "+255 754 000 005"])

    assert isinstance(sent, SendResult)
    assert sent.message_id.startswith("msg_")
    assert sent.recipients == ["+255712345675", "+255754000005"]
    assert sent.status == "queued"
    assert sent.cost == Decimal("20.00") and isinstance(sent.cost, Decimal)
    assert (sent.currency, sent.segments, sent.encoding) == ("TZS", 1, "GSM-7")
    assert sent.schedule_time is None and sent.replayed is False
    assert sent.idempotency_key
    after = client.balance()
    assert after.balance == before.balance - Decimal("20.00")
    assert after.last_updated is not None and after.last_updated.tzinfo is not None


def test_wait_follows_a_message_to_delivered_and_recipients_walk_every_page(client: Mifumo) -> None:
    numbers = phones(5)
    sent = client.sms.send("Pages", numbers)

    seen: list[str] = []
    final = client.sms.wait(
        sent.message_id, interval=0.2, timeout=60, on_update=lambda s: seen.append(s.status)
    )
    assert final.status == "delivered" and final.is_final
    assert seen[-1] == "delivered"
    assert final.counts == {"delivered": 5}
    assert final.delivery_time is not None and final.delivery_time.tzinfo is not None

    pages = list(client.sms.recipients(sent.message_id, page_size=2).pages())
    assert [len(page.items) for page in pages] == [2, 2, 1]
    assert {page.total for page in pages} == {5}
    recipients = list(client.sms.recipients(sent.message_id, page_size=2))
    assert all(isinstance(r, RecipientStatus) for r in recipients)
    assert sorted(r.phone for r in recipients) == numbers
    assert {r.status for r in recipients} == {"delivered"}

    first = client.sms.status(sent.message_id, per_page=2)
    assert first.pagination.pages == 3 and len(first.recipients) == 2
    assert first.recipient_count == 5 and first.cost == Decimal("50.00")


def test_messages_and_delivery_reports_follow_pagination_and_filters(client: Mifumo) -> None:
    sent = [client.sms.send(f"Ujumbe {n}", phones(2, network=NETWORKS[n])) for n in range(3)]
    for result in sent:
        client.sms.wait(result.message_id, interval=0.2, timeout=60)

    pages = list(client.sms.messages(page_size=2).pages())
    assert [len(page.items) for page in pages] == [2, 1]
    messages = list(client.sms.messages(page_size=2))
    assert all(isinstance(m, Message) for m in messages)
    assert [m.message_id for m in messages] == [r.message_id for r in reversed(sent)]
    assert [m.text for m in messages] == ["Ujumbe 2", "Ujumbe 1", "Ujumbe 0"]

    only = list(client.sms.messages(phone=sent[1].recipients[0]))
    assert [m.message_id for m in only] == [sent[1].message_id]
    assert client.sms.message(sent[0].message_id).counts == {"delivered": 2}

    since = datetime.now(UTC) - timedelta(hours=1)
    reports = list(client.sms.delivery_reports(status="delivered", start_date=since, page_size=4))
    assert len(reports) == 6 and all(isinstance(r, DeliveryReport) for r in reports)
    assert {r.cost for r in reports} == {Decimal("10.00")}
    assert (
        len(list(client.sms.delivery_reports(start_date=datetime.now(UTC) + timedelta(days=1))))
        == 0
    )
    assert list(client.sms.delivery_reports(status="failed")) == []


def test_a_failed_recipient_makes_the_wait_end_partially_delivered(client: Mifumo) -> None:
    sent = client.sms.send("Moja itashindwa", ["+255712345675", "+255712340001"])
    final = client.sms.wait(sent.message_id, interval=0.2, timeout=60)
    assert final.status == "partially_delivered"
    failed = [r for r in client.sms.recipients(sent.message_id) if r.status == "failed"]
    assert [(r.phone, r.error_code) for r in failed] == [("+255712340001", "UNDELIVERABLE")]


def test_a_scheduled_message_is_canceled_and_refunded(client: Mifumo) -> None:
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    sent = client.sms.send("Baadaye", phones(3), schedule_time=at)
    assert sent.status == "scheduled"
    assert sent.schedule_time == at
    balance = client.balance().balance

    canceled = client.sms.cancel(sent.message_id)
    assert (canceled.status, canceled.canceled, canceled.refunded) == (
        "canceled",
        3,
        Decimal("30.00"),
    )
    assert client.balance().balance == balance + Decimal("30.00")
    status = client.sms.status(sent.message_id)
    assert (status.status, status.cost, status.refunded) == (
        "canceled",
        Decimal("30.00"),
        Decimal("30.00"),
    )
    [listed] = [m for m in client.sms.messages() if m.message_id == sent.message_id]
    assert listed.refunded == Decimal("30.00")
    assert client.sms.message(sent.message_id).refunded == Decimal("30.00")


def test_a_naive_schedule_time_is_refused_before_anything_is_sent(client: Mifumo) -> None:
    with pytest.raises(ValueError, match="time zone"):
        client.sms.send("Saa gani?", ["+255712345675"], schedule_time=datetime(2030, 1, 1, 10))
    assert list(client.sms.messages()) == []


def test_sender_ids_are_listed_and_requested(client: Mifumo, account: Account) -> None:
    assert [(s.sender_id, s.status) for s in client.sms.sender_ids()] == [("MIFUMO", "approved")]
    requested = client.sms.request_sender_id("DUKA", purpose="Receipts")
    assert (requested.sender_id, requested.status, requested.purpose) == (
        "DUKA",
        "pending",
        "Receipts",
    )
    assert SenderId.objects.filter(account=account, value="DUKA").count() == 1
    assert [s.sender_id for s in client.sms.sender_ids()] == ["MIFUMO", "DUKA"]


def test_an_idempotency_key_of_ones_own_makes_a_repeated_send_one_message(
    client: Mifumo, account: Account
) -> None:
    first = client.sms.send("Mara moja", ["+255712345675"], idempotency_key="order-1234")
    again = client.sms.send("Mara moja", ["+255712345675"], idempotency_key="order-1234")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.message_id == first.message_id and again.idempotency_key == "order-1234"
    assert MessageRow.objects.filter(account=account).count() == 1

    with pytest.raises(ConflictError) as caught:
        client.sms.send("Nyingine", ["+255712345675"], idempotency_key="order-1234")
    assert caught.value.details == {"idempotency_key": "order-1234"}


def test_every_send_carries_its_own_idempotency_key(client: Mifumo, account: Account) -> None:
    one = client.sms.send("Sawa", ["+255712345675"])
    two = client.sms.send("Sawa", ["+255712345675"])
    assert one.idempotency_key != two.idempotency_key
    assert one.message_id != two.message_id
    assert MessageRow.objects.filter(account=account).count() == 2


def test_a_test_key_sends_through_the_simulator_for_free(
    server: Server, make_key: Callable[..., str], account: Account
) -> None:
    with Mifumo(make_key(account, "write", test=True), server.url) as test_client:
        before = test_client.balance().balance
        sent = test_client.sms.send("Jaribio", ["+255712345675"])
        assert sent.test is True
        assert test_client.sms.wait(sent.message_id, interval=0.2, timeout=60).status == "delivered"
        assert test_client.balance().balance == before
