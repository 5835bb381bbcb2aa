"""A small send is written with one statement (``sms.send_statement``): the opt-out check,
the debit with its ledger row, the message and its recipients. Everything it cannot write
(opted-out numbers, a short balance, a low-balance crossing) goes the general way with the
usual answers. The statements are read off the wire (libpq's trace), so a BEGIN or COMMIT
the driver sends on its own counts too."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.forms.models import model_to_dict
from prometheus_client import REGISTRY

from contacts.services import contact_create, contact_opt_out
from integration import usage
from integration.audit import AuditContext
from integration.models import Account, LedgerEntry
from integration.services import account_set_low_balance_threshold
from integration.signals import LowBalance, balance_fell_below_threshold, ledger_entry_recorded
from sms import send_statement
from sms.models import Message, Recipient
from sms.send_statement import ONE_STATEMENT_MAX
from sms.services import message_send
from tests.helpers import Api, assert_envelope, prepared_text, wire

TZ = "+255712345678"
TZ2 = "+255754000111"
KE = "+254712345678"  # no price rule: an unsupported destination
SEND = {"message": "Habari", "recipients": [TZ]}


# The general path's COPY of a send's recipients (the usage log writes with COPY too).
RECIPIENTS_COPY = 'COPY "sms_recipient"'


def writes(statements: list[str]) -> list[str]:
    """The statements besides reads, and besides preparing the send's statement (once per
    connection)."""
    return [s for s in statements if not s.upper().startswith(("SELECT", "PREPARE"))]


def one_statements(statements: list[str]) -> list[str]:
    """The runs of the send's prepared statement."""
    return [
        s
        for s in statements
        if s.startswith("EXECUTE ") and prepared_text(s).startswith("WITH blocked AS (")
    ]


def transaction_control(statements: list[str]) -> list[str]:
    words = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
    return [s for s in statements if s.split(" ")[0].upper() in words]


def opted_out_contact(account: Account, phone: str) -> None:
    contact_opt_out(contact=contact_create(account=account, name="c", phone_number=phone))


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The messages handed to the dispatcher (instead of Celery, which runs eagerly here and
    would add the dispatch's own statements to the trace)."""
    handed: list[str] = []
    monkeypatch.setattr("sms.services._enqueue_dispatch", handed.append)
    return handed


@pytest.fixture
def buffered_usage_log(settings: Any) -> Iterator[None]:
    """The usage log buffers its rows, as in production (the tests write them at once)."""
    settings.MIFUMO_USAGE_LOG_FLUSH_SIZE = 1000
    yield
    usage.buffer.flush()


@pytest.fixture
def general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every send takes the general path (what every send did before the one statement)."""
    monkeypatch.setattr("sms.services.ONE_STATEMENT_MAX", 0)


def ledger(account: Account) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(account=account, kind="debit").order_by("id"))


def balance(account: Account) -> Decimal:
    account.refresh_from_db()
    return account.balance


@pytest.mark.django_db(transaction=True)
def test_a_one_recipient_api_send_is_one_statement_without_begin_or_commit(
    make_account, make_key, dispatched, buffered_usage_log
):
    alice = make_account("alice")
    api = Api(make_key(alice).raw)
    assert_envelope(api.post("sms/send/", SEND), 200)  # caches warmed
    with wire() as statements:
        data = assert_envelope(api.post("sms/send/", SEND), 200)["data"]
    [statement] = writes(statements)
    assert one_statements(statements) == [statement]
    text = prepared_text(statement)
    assert text.startswith("WITH blocked AS (SELECT phone_number FROM contacts_contact")
    for table in ("integration_account", "integration_ledgerentry", "sms_message", "sms_recipient"):
        assert table in text
    assert transaction_control(statements) == []
    # Only the authentication reads besides; the opt-out SELECT is folded in.
    assert not [s for s in statements if "contacts_contact" in s and s != statement]
    assert dispatched[-1] == data["message_id"]
    assert balance(alice) == Decimal("4980.00")
    entry = ledger(alice)[-1]
    assert (entry.amount, entry.balance_after, entry.reference, entry.note) == (
        Decimal("-10.00"),
        Decimal("4980.00"),
        data["message_id"],
        "1 recipients x 1 parts",
    )
    recipient = Recipient.objects.get(message_id=data["message_id"])
    assert (recipient.phone, recipient.status, recipient.cost) == (TZ, "queued", Decimal("10.00"))


@pytest.mark.django_db(transaction=True)
def test_the_general_path_takes_seven_round_trips_for_the_same_send(
    make_account, make_key, dispatched, general_path, buffered_usage_log
):
    alice = make_account("alice")
    api = Api(make_key(alice).raw)
    assert_envelope(api.post("sms/send/", SEND), 200)
    with wire() as statements:
        assert_envelope(api.post("sms/send/", SEND), 200)
    assert [s.split(" ")[0] for s in statements if "integration_apikey" not in s] == [
        "SELECT",  # the opt-outs
        "BEGIN",
        "SELECT",  # the opt-outs again: a phone may have opted out while the send was priced
        "INSERT",  # the message
        "COPY",  # the recipients
        "WITH",  # the debit and its ledger row
        "COMMIT",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "request_body",
    [
        {"message": "Habari", "recipients": [TZ, TZ2]},
        {"message": "Habari {name|rafiki}, nambari {phone}", "recipients": [TZ, TZ2]},
        {"message": "Salamu " * 12 + "✓", "recipients": [TZ], "sender_id": "MIFUMO"},
        {"message": "Later", "recipients": [TZ2], "schedule_time": "2099-01-01T10:00:00Z"},
        {"message": "Hook", "recipients": [TZ], "webhook_url": "https://example.com/h"},
    ],
    ids=["plain", "personalised", "ucs2-long", "scheduled", "webhook"],
)
def test_both_paths_write_the_same_rows_and_answer_the_same_body(
    request_body,
    make_account,
    make_key,
    dispatched,
    monkeypatch,
    settings,
    django_capture_on_commit_callbacks,
):
    settings.MIFUMO_MAX_SCHEDULE_DAYS = 365 * 100
    monkeypatch.setattr("webhooks.security.validate_webhook_url", lambda url: url)
    monkeypatch.setattr("sms.services.validate_webhook_url", lambda url: url)
    answers, accounts = [], []
    for name, limit in (("fast", ONE_STATEMENT_MAX), ("general", 0)):
        monkeypatch.setattr("sms.services.ONE_STATEMENT_MAX", limit)
        account = make_account(name)
        accounts.append(account)
        with django_capture_on_commit_callbacks(execute=True):
            response = Api(make_key(account).raw).post("sms/send/", request_body)
        answers.append(assert_envelope(response, 200))
    fast, general = answers
    fast_id, general_id = fast["data"].pop("message_id"), general["data"].pop("message_id")
    assert fast == general

    def message(message_id: str) -> dict[str, Any]:
        row = model_to_dict(Message.objects.get(pk=message_id))
        return {k: v for k, v in row.items() if k not in ("id", "account", "api_key", "created_at")}

    def recipients(message_id: str) -> list[dict[str, Any]]:
        rows = Recipient.objects.filter(message_id=message_id).order_by("phone")
        drop = ("id", "message", "account", "created_at", "updated_at")
        return [{k: v for k, v in model_to_dict(r).items() if k not in drop} for r in rows]

    assert message(fast_id) == message(general_id)
    assert recipients(fast_id) == recipients(general_id)
    stamps = Message.objects.get(pk=fast_id).created_at
    assert {r.created_at for r in Recipient.objects.filter(message_id=fast_id)} == {stamps}
    ledgers = [ledger(account) for account in accounts]
    assert [len(rows) for rows in ledgers] == [1, 1]
    fast_entry, general_entry = (rows[0] for rows in ledgers)
    assert fast_entry.reference == fast_id and general_entry.reference == general_id
    keep = ("kind", "amount", "balance_after", "note", "created_by")
    assert model_to_dict(fast_entry, fields=keep) == model_to_dict(general_entry, fields=keep)
    assert balance(accounts[0]) == balance(accounts[1])
    assert dispatched == ([] if "schedule_time" in request_body else [fast_id, general_id])


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["fast", "general"])
def test_an_opted_out_number_is_skipped_as_before(path, api, alice, dispatched, monkeypatch):
    if path == "general":
        monkeypatch.setattr("sms.services.ONE_STATEMENT_MAX", 0)
    opted_out_contact(alice, TZ2)
    with wire() as statements:
        body = assert_envelope(api.post("sms/send/", {**SEND, "recipients": [TZ2, TZ]}), 200)
    data = body["data"]
    assert data["recipients"] == [TZ] and data["cost"] == 10.0
    assert data["skipped"] == [{"phone": TZ2, "reason": "opted_out"}]
    assert [r.phone for r in Recipient.objects.filter(message_id=data["message_id"])] == [TZ]
    [entry] = ledger(alice)
    assert entry.note == "1 recipients x 1 parts" and entry.amount == Decimal("-10.00")
    assert Message.objects.count() == 1
    if path == "fast":  # the one statement found the opt-out, wrote nothing, and fell back
        assert len(one_statements(statements)) == 1


@pytest.mark.django_db
def test_everyone_opted_out_is_refused_as_before_and_nothing_is_written(api, alice, dispatched):
    opted_out_contact(alice, TZ)
    body = assert_envelope(api.post("sms/send/", SEND), 400, "OPTED_OUT")
    assert body["message"] == "Every recipient has opted out of messages from this account"
    assert body["details"] == {"skipped": [{"phone": TZ, "reason": "opted_out"}]}
    assert not Message.objects.exists() and not Recipient.objects.exists()
    assert ledger(alice) == [] and balance(alice) == Decimal("5000.00")
    assert dispatched == []


@pytest.mark.django_db
def test_an_opted_out_number_without_a_route_is_skipped_not_unsupported(api, alice, dispatched):
    opted_out_contact(alice, KE)
    data = assert_envelope(api.post("sms/send/", {**SEND, "recipients": [KE, TZ]}), 200)["data"]
    assert data["recipients"] == [TZ]
    assert data["skipped"] == [{"phone": KE, "reason": "opted_out"}]
    response = api.post("sms/send/", {**SEND, "recipients": [TZ, "+254733000111"]})
    body = assert_envelope(response, 400, "UNSUPPORTED_DESTINATION")
    assert body["details"]["unsupported"] == ["+254733000111"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["fast", "general"])
def test_a_short_balance_is_insufficient_balance_as_before_and_writes_nothing(
    path, make_account, make_key, dispatched, monkeypatch
):
    if path == "general":
        monkeypatch.setattr("sms.services.ONE_STATEMENT_MAX", 0)
    poor = make_account("poor", balance="15.00")
    api = Api(make_key(poor).raw)
    response = api.post("sms/send/", {**SEND, "recipients": [TZ, TZ2]})
    body = assert_envelope(response, 402, "INSUFFICIENT_BALANCE")
    assert body["message"] == (
        "Account balance too low: this costs 20.00 TZS, the balance is 15.00 TZS"
    )
    assert body["details"] == {"cost": 20.0, "balance": 15.0, "currency": "TZS"}
    assert not Message.objects.exists() and not Recipient.objects.exists()
    assert ledger(poor) == [] and balance(poor) == Decimal("15.00")
    assert dispatched == []


@pytest.mark.django_db(transaction=True)
def test_a_test_key_writes_no_ledger_row_in_its_one_statement(
    make_account, make_key, dispatched, buffered_usage_log
):
    alice = make_account("alice")
    api = Api(make_key(alice, test=True).raw)
    assert_envelope(api.post("sms/send/", SEND), 200)  # the key's first use noted
    with wire() as statements:
        data = assert_envelope(api.post("sms/send/", SEND), 200)["data"]
    [statement] = writes(statements)
    assert one_statements(statements) == [statement]
    text = prepared_text(statement)
    assert "sms_message" in text and "sms_recipient" in text
    assert "integration_ledgerentry" not in text and "integration_account" not in text
    assert transaction_control(statements) == []
    assert data["test"] is True and data["cost"] == 0.0
    assert not LedgerEntry.objects.filter(account=alice, kind="debit").exists()
    assert balance(alice) == Decimal("5000.00")
    assert Recipient.objects.get(message_id=data["message_id"]).cost == Decimal("0.00")
    assert dispatched[-1] == data["message_id"]


@pytest.mark.django_db
def test_inside_an_idempotent_request_it_is_one_statement_and_a_replay_answers_the_same(
    api, alice, dispatched, django_capture_on_commit_callbacks
):
    headers = {"HTTP_IDEMPOTENCY_KEY": "otp-7781"}
    with django_capture_on_commit_callbacks(execute=True), wire() as statements:
        first = api.post("sms/send/", SEND, **headers)
    assert_envelope(first, 200)
    assert len(one_statements(statements)) == 1
    assert not [s for s in writes(statements) if "sms_message" in s]
    assert not [s for s in statements if s.startswith(RECIPIENTS_COPY)]
    with django_capture_on_commit_callbacks(execute=True):
        again = api.post("sms/send/", SEND, **headers)
    assert again.json() == first.json()
    assert Message.objects.count() == 1 and len(ledger(alice)) == 1
    assert balance(alice) == Decimal("4990.00")
    assert dispatched == [first.json()["data"]["message_id"]]


@pytest.mark.django_db
def test_the_ledger_signal_and_the_debit_metric_follow_the_one_statement(
    api, alice, dispatched, django_capture_on_commit_callbacks
):
    heard: list[LedgerEntry] = []

    def receiver(sender: Any, *, entry: LedgerEntry, **kwargs: Any) -> None:
        heard.append(entry)

    def debits() -> float:
        return REGISTRY.get_sample_value("mifumo_balance_debits_total", {"currency": "TZS"}) or 0

    before = debits()
    ledger_entry_recorded.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True), wire() as statements:
            data = assert_envelope(api.post("sms/send/", SEND), 200)["data"]
    finally:
        ledger_entry_recorded.disconnect(receiver)
    assert len(one_statements(statements)) == 1
    [entry] = heard
    stored = LedgerEntry.objects.get(pk=entry.pk)
    assert model_to_dict(entry) == model_to_dict(stored)
    assert entry.reference == data["message_id"] and entry.balance_after == Decimal("4990.00")
    assert not entry._state.adding
    assert debits() - before == 1


@pytest.mark.django_db
def test_a_debit_that_crosses_the_low_balance_threshold_alerts_through_the_general_path(
    api, alice, dispatched, django_capture_on_commit_callbacks
):
    account_set_low_balance_threshold(account=alice, threshold="4985.00")
    alerts: list[LowBalance] = []

    def receiver(sender: Any, *, alert: LowBalance, **kwargs: Any) -> None:
        alerts.append(alert)

    balance_fell_below_threshold.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True), wire() as statements:
            assert_envelope(api.post("sms/send/", SEND), 200)  # 5000 -> 4990: one statement
            assert_envelope(api.post("sms/send/", SEND), 200)  # 4990 -> 4980: crosses
            assert_envelope(api.post("sms/send/", SEND), 200)  # 4980 -> 4970: below already
    finally:
        balance_fell_below_threshold.disconnect(receiver)
    assert len([s for s in statements if s.startswith(RECIPIENTS_COPY)]) == 1
    assert len(one_statements(statements)) == 3
    assert alerts == [LowBalance(alice.pk, Decimal("4980.00"), Decimal("4985.00"), "TZS")]
    assert balance(alice) == Decimal("4970.00") and len(ledger(alice)) == 3


@pytest.mark.django_db
@pytest.mark.parametrize("count", [ONE_STATEMENT_MAX, ONE_STATEMENT_MAX + 1])
def test_the_limit_between_the_paths(
    count, alice, dispatched, settings, django_capture_on_commit_callbacks
):
    settings.MIFUMO_MAX_RECIPIENTS = max(settings.MIFUMO_MAX_RECIPIENTS, count)
    phones = [f"+25571200{i:04d}" for i in range(count)]
    with django_capture_on_commit_callbacks(execute=True), wire() as statements:
        result = message_send(account=alice, text="Habari", recipients=phones)
    copies = [s for s in statements if s.startswith(RECIPIENTS_COPY)]
    assert len(copies) == (0 if count <= ONE_STATEMENT_MAX else 1)
    sends = one_statements(statements) + [s for s in writes(statements) if "sms_" in s]
    assert len(sends) == (1 if count <= ONE_STATEMENT_MAX else 2)  # INSERT and COPY
    assert result.recipients == phones and result.message.recipient_count == count
    rows = Recipient.objects.filter(message=result.message)
    assert sorted(rows.values_list("phone", flat=True)) == phones
    assert {r.cost for r in rows} == {Decimal("10.00")}
    [entry] = ledger(alice)
    assert entry.amount == -10 * count and entry.note == f"{count} recipients x 1 parts"
    assert balance(alice) == Decimal("5000.00") - 10 * count
    assert dispatched == [result.message.id]


@pytest.mark.django_db
def test_a_dashboard_send_with_an_activity_log_entry_keeps_the_general_path(alice, dispatched):
    audit = AuditContext()
    with wire() as statements:
        result = message_send(account=alice, text="Habari", recipients=[TZ], audit=audit)
    assert [s for s in statements if s.startswith(RECIPIENTS_COPY)]
    assert not one_statements(statements)
    assert result.recipients == [TZ] and len(ledger(alice)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_connection_prepares_the_statement_once_and_again_after_a_reconnect(
    make_account, dispatched
):
    alice = make_account("alice")
    connection.close()
    for _ in range(2):
        with wire() as statements:
            for _ in range(3):
                message_send(account=alice, text="Habari", recipients=[TZ])
        [prepare] = [s for s in statements if s.startswith("PREPARE")]
        assert prepare.startswith("PREPARE ") and " AS WITH blocked AS (" in prepare
        executes = one_statements(statements)
        assert len(executes) == 3
        assert statements.index(prepare) < statements.index(executes[0])
        connection.close()
    assert len(ledger(alice)) == 6 and balance(alice) == Decimal("4940.00")


@pytest.mark.django_db(transaction=True)
def test_one_recipient_travels_as_plain_values_and_more_as_arrays(make_account, dispatched):
    alice = make_account("alice")
    with wire() as statements:
        one = message_send(account=alice, text="Habari", recipients=[TZ])
        two = message_send(account=alice, text="Habari", recipients=[TZ, TZ2])
    single, double = (prepared_text(s) for s in one_statements(statements))
    assert "unnest(" not in single and "ANY(" not in single
    assert "unnest(" in double and "phone_number = ANY(" in double
    rows = Recipient.objects.filter(message__in=[one.message, two.message])
    assert sorted(rows.values_list("message_id", "phone", "segments", "cost", "status")) == sorted(
        [
            (one.message.id, TZ, 1, Decimal("10.00"), "queued"),
            (two.message.id, TZ, 1, Decimal("10.00"), "queued"),
            (two.message.id, TZ2, 1, Decimal("10.00"), "queued"),
        ]
    )
    assert balance(alice) == Decimal("4970.00")


@pytest.mark.django_db(transaction=True)
def test_a_connection_keeps_one_cursor_for_its_sends_and_a_new_connection_gets_its_own(
    make_account, dispatched
):
    alice = make_account("alice")
    connection.close()
    message_send(account=alice, text="Habari", recipients=[TZ])
    raw, cursor = getattr(connection, send_statement._CURSOR)
    assert raw is connection.connection
    message_send(account=alice, text="Habari", recipients=[TZ])
    assert getattr(connection, send_statement._CURSOR)[1] is cursor
    connection.close()
    message_send(account=alice, text="Habari", recipients=[TZ])
    new_raw, new_cursor = getattr(connection, send_statement._CURSOR)
    assert new_raw is connection.connection and new_raw is not raw and new_cursor is not cursor
    new_cursor.close()  # closed under it: the next send makes another
    message_send(account=alice, text="Habari", recipients=[TZ])
    assert not getattr(connection, send_statement._CURSOR)[1].closed
    assert len(ledger(alice)) == 4 and balance(alice) == Decimal("4960.00")


class Undo(Exception):
    pass


def send_and_undo(account: Account) -> None:
    with transaction.atomic():
        message_send(account=account, text="Habari", recipients=[TZ])
        raise Undo


@pytest.mark.django_db(transaction=True)
def test_after_a_rolled_back_transaction_the_statement_is_prepared_again(make_account, dispatched):
    # The driver forgets (and deallocates) its prepared statements at a rollback, since
    # what they refer to may have changed: the next send prepares again, nothing piles up.
    alice = make_account("alice")
    connection.close()
    with wire() as statements, pytest.raises(Undo):
        send_and_undo(alice)
    assert [s for s in statements if s.startswith("PREPARE")]
    assert not Message.objects.exists() and balance(alice) == Decimal("5000.00")
    with wire() as statements:
        result = message_send(account=alice, text="Habari", recipients=[TZ])
        message_send(account=alice, text="Habari", recipients=[TZ])
    assert len([s for s in statements if s.startswith("PREPARE")]) == 1
    assert len(one_statements(statements)) == 2
    assert Message.objects.filter(pk=result.message.pk).exists() and len(ledger(alice)) == 2
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone() == (1,)
