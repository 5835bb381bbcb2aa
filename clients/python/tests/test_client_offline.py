"""What the client decides without a server: configuration, the signature check's edge
cases, reading events, request values. Everything that talks to a server is tested against a
real one in the other modules."""

from __future__ import annotations

import hashlib
import hmac
import inspect
import time
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from mifumo_client import AsyncMifumo, ConfigurationError, Mifumo, webhooks
from mifumo_client._convert import ConversionError, build, format_moment
from mifumo_client._core import BACKOFF_MAX, api_root, backoff
from mifumo_client.models import DeliveryReport, WebhookEndpoint
from mifumo_client.webhooks import MessageEvent, UnknownEvent

from webhooks.signing import signature_header

SECRET = "whsec_test_secret"
BODY = (
    b'{"event_id":"evt_1","event":"message.sent","created_at":"2024-01-01T10:05:02Z",'
    b'"message_id":"msg_1","status":"sent","recipients":[{"phone":"+255712345678",'
    b'"status":"sent","delivery_time":null}],'
    b'"metadata":{"sender_id":"MIFUMO","cost":10.5,"currency":"TZS"}}'
)


def signed(
    body: bytes = BODY, *, at: int | None = None, secrets: tuple[str, ...] = (SECRET,)
) -> str:
    # The server's own signer, so the client is held to what the server sends.
    return signature_header(list(secrets), int(time.time()) if at is None else at, body)


def test_the_key_and_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIFUMO_API_KEY", "mif_test_fromenv")
    monkeypatch.setenv("MIFUMO_URL", "https://sms.example.com/")
    client = Mifumo()
    assert client.api_root == "https://sms.example.com/api/integration/v1/"
    assert client._config.api_key == "mif_test_fromenv"
    client.close()
    monkeypatch.delenv("MIFUMO_URL")
    assert AsyncMifumo().api_root == "http://127.0.0.1:8001/api/integration/v1/"


def test_no_key_or_a_bad_url_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIFUMO_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="MIFUMO_API_KEY"):
        Mifumo()
    with pytest.raises(ConfigurationError, match="http"):
        Mifumo("mif_test_x", "sms.example.com")
    with pytest.raises(ConfigurationError, match="max_retries"):
        Mifumo("mif_test_x", max_retries=-1)


def test_the_api_root_is_found_from_the_site_or_the_root_itself() -> None:
    assert api_root("http://h:8001") == "http://h:8001/api/integration/v1/"
    assert api_root("http://h:8001/api/integration/v1") == "http://h:8001/api/integration/v1/"
    assert api_root(" http://h/api/integration/v1/ ") == "http://h/api/integration/v1/"


def test_methods_keep_the_operations_signature_and_docstring() -> None:
    client = Mifumo("mif_test_x")
    parameters = inspect.signature(client.sms.send).parameters
    assert list(parameters)[:2] == ["message", "recipients"]
    assert "idempotency_key" in parameters
    assert client.sms.send.__doc__ and "Idempotency-Key" in client.sms.send.__doc__
    assert client.sms.send.__name__ == "send"
    client.close()


def test_moments_are_sent_in_utc_and_naive_ones_refused() -> None:
    eat = timezone(timedelta(hours=3))
    assert format_moment(datetime(2024, 1, 1, 13, 0, tzinfo=eat)) == "2024-01-01T10:00:00Z"
    assert format_moment(date(2024, 1, 1)) == "2024-01-01"
    assert format_moment("2024-01-01T10:00:00Z") == "2024-01-01T10:00:00Z"
    with pytest.raises(ValueError, match="time zone"):
        format_moment(datetime(2024, 1, 1, 10))


def test_backoff_grows_and_stays_bounded() -> None:
    for attempt in range(10):
        ceiling = min(BACKOFF_MAX, 0.5 * 2**attempt)
        assert all(ceiling / 2 <= backoff(attempt) <= ceiling for _ in range(50))


def test_a_signature_of_the_server_verifies() -> None:
    assert webhooks.verify(SECRET, signed(), BODY)
    assert webhooks.verify(SECRET, signed(), BODY.decode())
    assert webhooks.verify(SECRET, signed(secrets=("whsec_new", SECRET)), BODY)
    assert webhooks.verify(("whsec_other", SECRET), signed(), BODY)


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "no X-Mifumo-Signature"),
        ("", "no X-Mifumo-Signature"),
        ("v1=abc", "no timestamp"),
        ("t=notanumber,v1=abc", "no timestamp"),
        ("t={now}", "no v1"),
        ("t={now},v1=", "no v1"),
        ("t={now},v1=00", "no v1 signature matches"),
        ("t={now},v1=\u00e9\u00e9", "no v1 signature matches"),
        ("t=\u0661\u0662,v1=00", "no timestamp"),
    ],
)
def test_a_malformed_header_is_refused_with_the_reason(header: str | None, why: str) -> None:
    if header is not None:
        header = header.format(now=int(time.time()))  # now, not when the tests were collected
    assert not webhooks.verify(SECRET, header, BODY)
    with pytest.raises(webhooks.WebhookSignatureError, match=why):
        webhooks.construct_event(SECRET, header, BODY)


def test_an_old_or_future_timestamp_is_refused_within_the_tolerance() -> None:
    now = int(time.time())
    assert not webhooks.verify(SECRET, signed(at=now - 301), BODY)
    assert not webhooks.verify(SECRET, signed(at=now + 301), BODY)
    assert webhooks.verify(SECRET, signed(at=now - 290), BODY)
    assert webhooks.verify(SECRET, signed(at=now - 3000), BODY, tolerance=3600)


def test_the_signature_covers_the_timestamp() -> None:
    now = int(time.time())
    mac = hmac.new(SECRET.encode(), f"{now - 1000}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert not webhooks.verify(SECRET, f"t={now},v1={mac}", BODY)


def test_a_verified_body_becomes_a_typed_event() -> None:
    event = webhooks.construct_event(SECRET, signed(), BODY)
    assert isinstance(event, MessageEvent)
    assert event.created_at == datetime(2024, 1, 1, 10, 5, 2, tzinfo=UTC)
    assert str(event.metadata.cost) == "10.50"
    assert event.recipients[0].delivery_time is None


def test_an_event_type_the_client_does_not_know_is_kept_whole() -> None:
    body = (
        b'{"event_id":"evt_2","event":"contact.scored","created_at":"2024-01-01T10:00:00Z",'
        b'"contact_id":"con_1","score":1.5}'
    )
    event = webhooks.parse_event(body)
    assert isinstance(event, UnknownEvent)
    assert (event.event, event.data["contact_id"], event.data["score"]) == (
        "contact.scored",
        "con_1",
        1.5,
    )


def test_inbound_and_balance_events_are_read_into_their_own_classes() -> None:
    opted = webhooks.parse_event(
        b'{"event_id":"evt_4","event":"contact.opted_in","created_at":"2024-01-01T10:00:00Z",'
        b'"contact_id":"con_1","phone":"+255712345678","source":"api","inbound_id":null}'
    )
    assert isinstance(opted, webhooks.ContactOptEvent)
    assert (opted.contact_id, opted.source, opted.inbound_id) == ("con_1", "api", None)
    low = webhooks.parse_event(
        b'{"event_id":"evt_5","event":"account.low_balance","created_at":"2024-01-01T10:00:00Z",'
        b'"balance":99.5,"threshold":100,"currency":"TZS"}'
    )
    assert isinstance(low, webhooks.LowBalanceEvent)
    assert (low.balance, low.threshold) == (Decimal("99.50"), Decimal("100.00"))
    # ``from`` is read into ``from_``; a received event without it is refused by name.
    with pytest.raises(ValueError, match="from"):
        webhooks.parse_event(
            b'{"event_id":"evt_6","event":"message.received","created_at":"2024-01-01T10:00:00Z",'
            b'"inbound_id":"inb_1","to":"+255700000100","text":"STOP"}'
        )
    assert "message.test" not in webhooks.SUBSCRIBABLE_EVENTS
    assert "message.received" in webhooks.SUBSCRIBABLE_EVENTS


def test_a_send_needs_a_message_or_a_template_but_not_both() -> None:
    with Mifumo("mif_test_x", "http://127.0.0.1:9") as client:
        with pytest.raises(ValueError, match="give message or template_id"):
            client.sms.send(recipients=["0712345678"])
        with pytest.raises(ValueError, match="give message or template_id"):
            client.sms.send("Habari", ["0712345678"], template_id="tpl_1")


def test_a_body_that_is_not_an_event_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Mifumo webhook event"):
        webhooks.parse_event(b'{"hello": "world"}')
    with pytest.raises(ValueError, match=r"message\.sent"):
        webhooks.parse_event(b'{"event_id": "evt_3", "event": "message.sent"}')


def test_answers_are_read_into_exact_types_and_wrong_shapes_are_refused() -> None:
    row = {
        "message_id": "msg_1",
        "phone": "+255712345678",
        "status": "delivered",
        "sender_id": "MIFUMO",
        "sent_at": "2024-01-01T10:00:00Z",
        "delivery_time": None,
        "error_code": None,
        "cost": Decimal("10.5"),
        "currency": "TZS",
        "created_at": "2024-01-01T10:00:00",
        "added_by_a_newer_server": True,
    }
    report = build(DeliveryReport, row)
    assert report.cost == Decimal("10.50") and str(report.cost) == "10.50"
    assert report.sent_at == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert report.created_at.tzinfo is UTC  # a time without a zone is UTC
    with pytest.raises(ConversionError, match=r"DeliveryReport\.phone: expected str"):
        build(DeliveryReport, {**row, "phone": 255712345678})
    with pytest.raises(ConversionError, match=r"DeliveryReport\.cost: expected a number"):
        build(DeliveryReport, {**row, "cost": "ten"})
    with pytest.raises(ConversionError, match=r"DeliveryReport\.sent_at: expected ISO 8601"):
        build(DeliveryReport, {**row, "sent_at": "yesterday"})
    with pytest.raises(ConversionError, match="has no 'currency'"):
        build(DeliveryReport, {k: v for k, v in row.items() if k != "currency"})
    with pytest.raises(ConversionError, match="expected an object"):
        build(DeliveryReport, ["not", "an", "object"])
    # A field the server may leave out (the secret, shown only on creation) takes its default.
    endpoint = {
        "id": "whk_1",
        "url": "https://example.com/hook",
        "events": ["message.sent"],
        "active": True,
        "description": "",
        "disabled_reason": None,
        "disabled_at": None,
        "secret_rotated_at": None,
        "created_at": "2024-01-01T10:00:00Z",
        "updated_at": "2024-01-01T10:00:00Z",
    }
    assert build(WebhookEndpoint, endpoint).secret is None
    assert build(WebhookEndpoint, {**endpoint, "secret": "whsec_x"}).secret == "whsec_x"
