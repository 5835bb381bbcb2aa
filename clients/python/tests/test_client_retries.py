"""Retries against a real server behind a real proxy that loses answers: a send retried after
its answer was lost stays one message, charged once; 429 waits as long as Retry-After says;
calls the server does not deduplicate are not sent twice."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from faulty_proxy import Fault, FaultyProxy
from mifumo_client import (
    Mifumo,
    MifumoConnectionError,
    NotFoundError,
    RateLimitError,
    UnexpectedResponseError,
)
from mifumo_server import Server, closed_port

from contacts.models import Contact
from integration.models import Account, ApiKey
from integration.ratelimit import _window
from sms.models import Message

pytestmark = pytest.mark.slow

SEND_PATH = "/api/integration/v1/sms/send/"


@pytest.fixture
def proxy(server: Server) -> Iterator[FaultyProxy]:
    running = FaultyProxy(server.url)
    yield running
    running.close()


@pytest.fixture
def proxied(proxy: FaultyProxy, api_key: str) -> Iterator[Mifumo]:
    with Mifumo(api_key, proxy.url, max_retries=2) as client:
        yield client


@pytest.mark.parametrize("fault", [Fault.GATEWAY_503, Fault.ENVELOPE_503, Fault.CUT])
def test_a_send_whose_answer_is_lost_is_retried_into_one_message_charged_once(
    proxied: Mifumo, proxy: FaultyProxy, account: Account, fault: Fault
) -> None:
    proxy.fail_next(fault)
    started = time.monotonic()
    sent = proxied.sms.send("Mara moja tu", ["+255712345675"])
    elapsed = time.monotonic() - started

    attempts = proxy.on(SEND_PATH)
    assert [seen.fault for seen in attempts] == [fault, Fault.NONE]
    keys = {seen.header("Idempotency-Key") for seen in attempts}
    assert keys == {sent.idempotency_key}
    assert sent.replayed is True
    assert [m.id for m in Message.objects.filter(account=account)] == [sent.message_id]
    account.refresh_from_db()
    assert account.balance == Decimal("4990.00")
    if fault is Fault.ENVELOPE_503:
        assert elapsed >= 1.0  # its Retry-After: 1 was honoured


def test_without_retries_a_lost_answer_is_raised_and_the_same_key_finds_the_message(
    proxy: FaultyProxy, api_key: str, account: Account
) -> None:
    proxy.fail_next(Fault.GATEWAY_503)
    with Mifumo(api_key, proxy.url, max_retries=0) as client:
        with pytest.raises(UnexpectedResponseError) as caught:
            client.sms.send("Hapo", ["+255712345675"], idempotency_key="invoice-77")
        assert caught.value.status == 503
        again = client.sms.send("Hapo", ["+255712345675"], idempotency_key="invoice-77")
    assert again.replayed is True
    assert [m.id for m in Message.objects.filter(account=account)] == [again.message_id]


def test_a_key_creation_is_not_sent_again_after_its_answer_was_lost(
    proxied: Mifumo, proxy: FaultyProxy, account: Account
) -> None:
    # The server keeps no idempotency record for an answer holding a raw key.
    before = ApiKey.objects.filter(account=account).count()
    proxy.fail_next(Fault.CUT)
    with pytest.raises(MifumoConnectionError, match="1 attempt"):
        proxied.keys.create("lost")
    assert len(proxy.on("/api/integration/v1/keys/create/")) == 1
    assert ApiKey.objects.filter(account=account).count() == before + 1

    proxy.fail_next(Fault.GATEWAY_503)
    with pytest.raises(UnexpectedResponseError):
        proxied.keys.create("lost again")
    assert len(proxy.on("/api/integration/v1/keys/create/")) == 2


def test_a_delete_whose_answer_was_lost_is_done_not_a_not_found(
    proxied: Mifumo, proxy: FaultyProxy, account: Account
) -> None:
    contact = proxied.contacts.create("Asha", "+255712345670")
    path = f"/api/integration/v1/contacts/{contact.id}/"
    proxy.fail_next(Fault.CUT)
    deleted = proxied.contacts.delete(contact.id)
    assert (deleted.id, deleted.deleted) == (contact.id, True)
    assert [seen.fault for seen in proxy.on(path) if seen.method == "DELETE"] == [
        Fault.CUT,
        Fault.NONE,
    ]
    assert not Contact.objects.filter(pk=contact.id).exists()
    # A delete of what was never there (or gone before) is still a NotFoundError.
    with pytest.raises(NotFoundError):
        proxied.contacts.delete(contact.id)


def test_a_read_that_times_out_is_read_again(proxy: FaultyProxy, api_key: str) -> None:
    proxy.fail_next(Fault.SLOW)
    with Mifumo(api_key, proxy.url, timeout=1.0, max_retries=1) as client:
        assert client.balance().currency == "TZS"
    assert [seen.fault for seen in proxy.on("/api/integration/v1/sms/balance/")] == [
        Fault.SLOW,
        Fault.NONE,
    ]


def test_connection_errors_are_retried_with_backoff_up_to_max_retries(api_key: str) -> None:
    started = time.monotonic()
    with (
        Mifumo(api_key, f"http://127.0.0.1:{closed_port()}", max_retries=2) as client,
        pytest.raises(MifumoConnectionError, match="3 attempts"),
    ):
        client.balance()
    # Two waits: 0.25-0.5 s, then 0.5-1 s.
    assert 0.75 <= time.monotonic() - started < 5


def test_a_rate_limited_send_waits_as_long_as_retry_after_and_then_goes(
    server: Server, make_limited_account: Callable[..., Account], make_key: Callable[..., str]
) -> None:
    account = make_limited_account(left=(3, 8), sms_per_minute=1)
    with Mifumo(make_key(account), server.url, max_retries=1) as client:
        client.sms.send("Ya kwanza", ["+255712345675"])
        _end, left = _window(f"sms_send:account:{account.pk}", 60)
        started = time.monotonic()
        second = client.sms.send("Ya pili", ["+255712345675"])
        waited = time.monotonic() - started
    assert left - 1 <= waited <= left + 5
    assert Message.objects.filter(account=account).count() == 2
    assert second.replayed is False


def test_a_rate_limit_asking_for_more_than_a_minute_is_raised_at_once(
    server: Server, make_limited_account: Callable[..., Account], make_key: Callable[..., str]
) -> None:
    # The hour's window must outlast the test by more than the minute the client waits.
    account = make_limited_account(left=(70, 3600), api_per_hour=1)
    with Mifumo(make_key(account), server.url, max_retries=2) as client:
        client.balance()
        started = time.monotonic()
        with pytest.raises(RateLimitError) as caught:
            client.balance()
    assert time.monotonic() - started < 2
    assert caught.value.details["bucket"] == "api"
    assert caught.value.retry_after is not None and caught.value.retry_after > 60
