"""Every error class of the client, each raised from a real error of a real server, with the
envelope's status, code, message, details and the request id; answers that are not the API's
and no answer at all apart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest
from faulty_proxy import Fault, FaultyProxy
from mifumo_client import (
    BadRequestError,
    ConflictError,
    InsufficientBalanceError,
    InternalServerError,
    InvalidCredentialsError,
    InvalidPhoneError,
    InvalidScheduleTimeError,
    InvalidSenderIdError,
    MessageTooLongError,
    MethodNotAllowedError,
    Mifumo,
    MifumoConnectionError,
    MifumoError,
    MifumoException,
    MifumoTimeoutError,
    NotFoundError,
    OptedOutError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    TooManyRecipientsError,
    UnexpectedResponseError,
    UnsupportedDestinationError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from mifumo_client.errors import ERRORS_BY_CODE
from mifumo_server import Server, closed_port, mifumo_server

from integration.models import Account
from mifumo.api.errors import HTTP_STATUS, ErrorCode
from sms.models import Message
from tests.ops.conftest import fresh_database  # noqa: F401 - a fixture, used by name

pytestmark = pytest.mark.slow

E = TypeVar("E", bound=MifumoError)
PROVOKED: set[type[MifumoError]] = set()


def provokes(error: type[MifumoError]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Marks the test that makes the server answer ``error``'s code."""

    def mark(test: Callable[..., None]) -> Callable[..., None]:
        PROVOKED.add(error)
        return test

    return mark


def raised(error: type[E], call: Callable[[], object]) -> E:
    """Run ``call``; it must raise exactly ``error`` carrying the whole envelope."""
    with pytest.raises(error) as caught:
        call()
    exc = caught.value
    assert type(exc) is error
    assert exc.error_code is not None and exc.error_code == error.code
    assert exc.status == HTTP_STATUS[ErrorCode(exc.error_code)]
    assert exc.message and exc.message in str(exc)
    assert exc.request_id and len(exc.request_id) >= 8
    return exc


def test_the_client_has_one_class_per_error_code_of_the_server() -> None:
    assert set(ERRORS_BY_CODE) == {code.value for code in ErrorCode}
    assert set(ERRORS_BY_CODE.values()) == PROVOKED
    assert all(
        issubclass(cls, BadRequestError) == (HTTP_STATUS[ErrorCode(code)] == 400)
        for code, cls in ERRORS_BY_CODE.items()
    )


@provokes(ValidationError)
def test_an_invalid_field_is_a_validation_error_naming_it(client: Mifumo) -> None:
    exc = raised(ValidationError, lambda: client.contacts.create("Amina", "0712000015", email="x"))
    assert exc.status == 400 and "email" in exc.details


@provokes(InvalidPhoneError)
def test_an_invalid_number_is_invalid_phone(client: Mifumo) -> None:
    exc = raised(InvalidPhoneError, lambda: client.sms.send("Habari", ["12345"]))
    assert [item["phone"] for item in exc.details["invalid"]] == ["12345"]


@provokes(MessageTooLongError)
def test_a_long_message_is_message_too_long(client: Mifumo) -> None:
    exc = raised(MessageTooLongError, lambda: client.sms.send("x" * 161, ["+255712345675"]))
    assert (exc.details["length"], exc.details["limit"]) == (161, 160)


@provokes(InvalidSenderIdError)
def test_an_unapproved_sender_is_invalid_sender_id(client: Mifumo) -> None:
    raised(InvalidSenderIdError, lambda: client.sms.send("Hi", ["+255712345675"], sender_id="NOPE"))


@provokes(InvalidScheduleTimeError)
def test_a_past_schedule_time_is_invalid_schedule_time(client: Mifumo) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    raised(
        InvalidScheduleTimeError,
        lambda: client.sms.send("Jana", ["+255712345675"], schedule_time=past),
    )


@provokes(TooManyRecipientsError)
def test_ten_thousand_and_one_recipients_are_too_many(client: Mifumo, account: Account) -> None:
    phones = [f"+25571{n:07d}" for n in range(10_001)]
    raised(TooManyRecipientsError, lambda: client.sms.send("Wote", phones))
    assert not Message.objects.filter(account=account).exists()


@provokes(UnsupportedDestinationError)
def test_a_country_without_a_price_is_an_unsupported_destination(client: Mifumo) -> None:
    raised(UnsupportedDestinationError, lambda: client.sms.send("Jambo", ["+254712345678"]))


@provokes(OptedOutError)
def test_sending_only_to_opted_out_numbers_is_opted_out(client: Mifumo) -> None:
    contact = client.contacts.create("Amina", "+255712345675")
    client.contacts.opt_out(contact.id)
    raised(OptedOutError, lambda: client.sms.send("Habari", ["0712345675"]))


@provokes(InvalidCredentialsError)
def test_a_wrong_key_is_invalid_credentials(server: Server) -> None:
    with Mifumo("mif_live_" + "x" * 32, server.url) as stranger:
        raised(InvalidCredentialsError, stranger.balance)


@provokes(InsufficientBalanceError)
def test_a_send_above_the_balance_is_insufficient_balance(
    server: Server, make_account: Callable[..., Account], make_key: Callable[..., str]
) -> None:
    poor = make_account(balance="15.00")
    with Mifumo(make_key(poor), server.url) as client:
        exc = raised(
            InsufficientBalanceError,
            lambda: client.sms.send("Mbili", ["+255712345675", "+255754000005"]),
        )
        assert exc.details == {
            "cost": Decimal("20.0"),
            "balance": Decimal("15.0"),
            "currency": "TZS",
        }
        assert client.balance().balance == Decimal("15.00")


@provokes(PermissionDeniedError)
def test_a_read_key_sending_is_permission_denied(
    server: Server, account: Account, make_key: Callable[..., str]
) -> None:
    with Mifumo(make_key(account, "read"), server.url) as reader:
        assert reader.balance().currency == "TZS"
        raised(PermissionDeniedError, lambda: reader.sms.send("Hapana", ["+255712345675"]))
        raised(PermissionDeniedError, lambda: list(reader.keys.list()))


@provokes(NotFoundError)
def test_an_unknown_id_is_not_found(client: Mifumo) -> None:
    raised(NotFoundError, lambda: client.sms.status("msg_01J9Z8Q4W5X6Y7Z8A9B0C1D2E3"))
    raised(NotFoundError, lambda: client.keys.revoke(987654))


@provokes(MethodNotAllowedError)
def test_a_wrong_method_is_method_not_allowed(client: Mifumo) -> None:
    raised(MethodNotAllowedError, lambda: client.request("PUT", "sms/send/", json={}))


@provokes(ConflictError)
def test_canceling_a_queued_message_is_a_conflict(client: Mifumo) -> None:
    sent = client.sms.send("Sasa hivi", ["+255712345675"])
    raised(ConflictError, lambda: client.sms.cancel(sent.message_id))


@provokes(PayloadTooLargeError)
def test_a_body_over_two_mebibytes_is_payload_too_large(client: Mifumo, account: Account) -> None:
    exc = raised(PayloadTooLargeError, lambda: client.sms.send("x" * 2_200_000, ["+255712345675"]))
    assert exc.details["limit"] == 2 * 1024 * 1024
    assert not Message.objects.filter(account=account).exists()


@provokes(UnsupportedMediaTypeError)
def test_a_body_that_is_not_json_is_unsupported_media_type(client: Mifumo) -> None:
    raised(
        UnsupportedMediaTypeError,
        lambda: client.request("POST", "sms/send/", content=b"hi", content_type="text/plain"),
    )


@provokes(RateLimitError)
def test_too_many_sends_is_rate_limited_with_the_wait(
    server: Server, make_limited_account: Callable[..., Account], make_key: Callable[..., str]
) -> None:
    limited = make_limited_account(sms_per_minute=1)
    with Mifumo(make_key(limited), server.url, max_retries=0) as client:
        client.sms.send("Moja", ["+255712345675"])
        exc = raised(RateLimitError, lambda: client.sms.send("Mbili", ["+255712345675"]))
    assert exc.details["bucket"] == "sms_send" and exc.details["limit"] == 1
    assert exc.retry_after is not None and 1 <= exc.retry_after <= 60
    assert exc.retry_after == exc.details["retry_after"]


@provokes(InternalServerError)
def test_a_server_failure_is_internal_error_with_the_request_id(
    tmp_path: Path,
    fresh_database: str,  # noqa: F811 - the fixture
) -> None:
    # A server on a database nobody migrated: every query fails inside the server.
    with (
        mifumo_server(tmp_path, fresh_database, "", worker=False) as broken,
        Mifumo("mif_live_" + "x" * 32, broken.url, max_retries=0) as client,
    ):
        exc = raised(InternalServerError, client.balance)
    assert exc.details == {"request_id": exc.request_id}


@provokes(ServiceUnavailableError)
def test_an_unreachable_database_is_service_unavailable(tmp_path: Path) -> None:
    gone = f"postgres://postgres@127.0.0.1:{closed_port()}/gone"
    with (
        mifumo_server(tmp_path, gone, "", worker=False) as broken,
        Mifumo("mif_live_" + "x" * 32, broken.url, max_retries=0) as client,
    ):
        exc = raised(ServiceUnavailableError, client.balance)
    assert exc.headers.get("retry-after") == "5"


def test_a_page_that_is_not_the_api_is_an_unexpected_response(server: Server, api_key: str) -> None:
    proxy = FaultyProxy(server.url)
    try:
        proxy.fail_next(Fault.HTML_502)
        with Mifumo(api_key, proxy.url) as client, pytest.raises(UnexpectedResponseError) as caught:
            client.balance()
    finally:
        proxy.close()
    exc = caught.value
    assert (exc.status, exc.error_code) == (502, None)
    assert "502 Bad Gateway" in exc.details
    assert isinstance(exc, MifumoError)


def test_no_server_at_all_is_a_connection_error_not_an_api_error(api_key: str) -> None:
    with (
        Mifumo(api_key, f"http://127.0.0.1:{closed_port()}", max_retries=1) as client,
        pytest.raises(MifumoConnectionError) as caught,
    ):
        client.balance()
    assert not isinstance(caught.value, MifumoError)
    assert isinstance(caught.value, MifumoException)
    assert "2 attempts" in str(caught.value)


def test_an_answer_later_than_the_timeout_is_a_timeout_error(server: Server, api_key: str) -> None:
    proxy = FaultyProxy(server.url)
    try:
        proxy.fail_next(Fault.SLOW)
        with (
            Mifumo(api_key, proxy.url, timeout=0.5, max_retries=0) as client,
            pytest.raises(MifumoTimeoutError),
        ):
            client.balance()
    finally:
        proxy.close()
