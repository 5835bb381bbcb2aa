"""Each account's recipient tally, kept by PostgreSQL's triggers, against a count of its rows
after every way recipients are written and removed; and the delivery reports' total that
reads it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Sum
from django.utils import timezone

from contacts.services import contact_create, contact_opt_out
from integration.models import Account
from mifumo.errors import DomainError, ErrorCode
from sms.models import Message, Recipient, RecipientTally
from sms.selectors import recipient_total
from sms.services import message_send
from tests.helpers import Api, assert_envelope

TZ = "+255712345678"
LATEST = "0009_recipient_tally"


def counted() -> dict[int, int]:
    """Each account's recipients, counted."""
    rows = Recipient.objects.values("account_id").annotate(n=Count("id")).order_by()
    return {row["account_id"]: row["n"] for row in rows}


def tallied() -> dict[int, int]:
    """Each account's tally, its shards summed (accounts whose tally is 0 left out)."""
    rows = RecipientTally.objects.values("account_id").annotate(n=Sum("total")).order_by()
    return {row["account_id"]: row["n"] for row in rows if row["n"]}


def assert_tally_is_the_count() -> None:
    assert tallied() == counted()


def queued(message: Message, phone: str) -> Recipient:
    """An unsaved recipient of ``message``, written by the caller through the ORM."""
    return Recipient(
        message=message,
        account_id=message.account_id,
        created_at=message.created_at,
        phone=phone,
        status=Recipient.Status.QUEUED,
    )


@pytest.mark.django_db
def test_a_one_recipient_send_through_the_api_is_tallied(api, alice):
    body = {"message": "Habari", "recipients": [TZ]}
    for _ in range(3):
        assert_envelope(api.post("sms/send/", body), 200)
    assert tallied() == {alice.pk: 3}
    assert recipient_total(account_id=alice.pk) == 3


@pytest.mark.django_db
def test_sends_of_every_size_and_accounts_are_tallied_apart(alice, bob):
    message_send(account=alice, text="hi", recipients=[TZ, "+255754000111"])
    # Past the one statement's limit the recipients are written with COPY.
    many = [f"+25571300{i:04d}" for i in range(150)]
    message_send(account=alice, text="hi", recipients=many)
    message_send(account=bob, text="hi", recipients=[TZ])
    assert tallied() == {alice.pk: 152, bob.pk: 1}
    assert_tally_is_the_count()


@pytest.mark.django_db
def test_scheduled_sends_are_tallied(alice):
    later = (timezone.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    message_send(account=alice, text="later", recipients=[TZ], schedule_time=later)
    assert tallied() == {alice.pk: 1}
    assert_tally_is_the_count()


@pytest.mark.django_db
def test_rows_written_by_the_orm_are_tallied(alice):
    message = message_send(account=alice, text="hi", recipients=[TZ]).message
    queued(message, "+255754000111").save()
    Recipient.objects.bulk_create(queued(message, f"+25575400{i:04d}") for i in range(5))
    assert tallied() == {alice.pk: 7}


@pytest.mark.django_db
def test_a_send_that_writes_nothing_tallies_nothing(alice, make_account):
    contact = contact_create(account=alice, name="Asha", phone_number=TZ)
    contact_opt_out(contact=contact)
    with pytest.raises(DomainError) as refused:
        message_send(account=alice, text="hi", recipients=[TZ])
    assert refused.value.code == ErrorCode.OPTED_OUT
    poor = make_account("poor", balance="0.00")
    with pytest.raises(DomainError) as refused:
        message_send(account=poor, text="hi", recipients=["+255754000111"])
    assert refused.value.code == ErrorCode.INSUFFICIENT_BALANCE
    assert tallied() == {}
    assert recipient_total(account_id=alice.pk) == 0
    assert_tally_is_the_count()


@pytest.mark.django_db
def test_rows_rolled_back_leave_the_tally_as_it_was(alice):
    message_send(account=alice, text="hi", recipients=[TZ])
    seen = []

    def send_then_fail() -> None:
        with transaction.atomic():
            message_send(account=alice, text="hi", recipients=["+255754000111", "+255754000222"])
            seen.append(tallied())
            raise RuntimeError

    with pytest.raises(RuntimeError):
        send_then_fail()
    assert seen == [{alice.pk: 3}]
    assert tallied() == {alice.pk: 1}


@pytest.mark.django_db
def test_deleted_rows_are_taken_off(alice, bob):
    kept = message_send(account=alice, text="hi", recipients=[TZ]).message
    gone = message_send(account=alice, text="hi", recipients=[TZ, "+255754000111"]).message
    message_send(account=bob, text="hi", recipients=[TZ])
    Recipient.objects.filter(message=gone, phone=TZ).delete()
    assert tallied() == {alice.pk: 2, bob.pk: 1}
    Message.objects.filter(pk=gone.pk).delete()  # its last recipient by cascade
    assert tallied() == {alice.pk: 1, bob.pk: 1}
    assert Recipient.objects.filter(message=kept).count() == 1
    assert_tally_is_the_count()


@pytest.mark.django_db
def test_purged_messages_are_taken_off(alice):
    old = message_send(account=alice, text="old", recipients=[TZ, "+255754000111"]).message
    message_send(account=alice, text="new", recipients=[TZ])
    Recipient.objects.filter(message=old).update(status=Recipient.Status.DELIVERED)
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=400))
    out = StringIO()
    call_command("purge_messages", "--older-than-days", "30", stdout=out)
    assert "Purged 1 messages (2 recipients)" in out.getvalue()
    assert tallied() == {alice.pk: 1}
    assert_tally_is_the_count()


@pytest.mark.django_db
def test_an_account_deleted_takes_its_tally_with_it(make_account, bob):
    # An account with recipients and no ledger entry (those protect an account): rows
    # written straight.
    gone = make_account("gone", balance="0.00")
    message = Message.objects.create(
        account=gone,
        text="hi",
        sender_id="MIFUMO",
        encoding="GSM-7",
        segments=1,
        recipient_count=2,
        cost=Decimal("0.00"),
        created_at=timezone.now(),
    )
    for phone in (TZ, "+255754000111"):
        queued(message, phone).save()
    message_send(account=bob, text="hi", recipients=[TZ])
    assert tallied() == {bob.pk: 1, gone.pk: 2}
    Account.objects.filter(pk=gone.pk).delete()
    with connection.cursor() as cursor:
        # The foreign keys are checked at commit, which a test's transaction never reaches.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert not RecipientTally.objects.filter(account_id=gone.pk).exists()
    assert tallied() == {bob.pk: 1}


@pytest.mark.django_db
def test_truncating_the_recipients_clears_the_tallies(alice):
    message_send(account=alice, text="hi", recipients=[TZ])
    with connection.cursor() as cursor:
        # The rows' deferred foreign-key checks first: TRUNCATE refuses to run before them.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("TRUNCATE sms_recipient CASCADE")
    assert not RecipientTally.objects.exists()
    message_send(account=alice, text="hi", recipients=[TZ])
    assert tallied() == {alice.pk: 1}


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_of_one_account_are_tallied_exactly_across_shards(make_account, make_key):
    account = make_account("busy", balance="100000.00")
    Account.objects.filter(pk=account.pk).update(sms_per_minute=10_000)
    raw = make_key(account).raw
    test_raw = make_key(account, test=True, name="test key").raw

    def post(n: int) -> int:
        try:
            # Live sends wait for one another on the balance row; test sends do not.
            key = test_raw if n % 2 else raw
            body = {"message": "Habari", "recipients": [f"+25571400{n:04d}"]}
            return Api(key).post("sms/send/", body).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(post, range(120)))
    assert codes == [200] * 120
    assert tallied() == {account.pk: 120} == counted()
    # Written from several connections, the tally is spread over rows of its own.
    shards = set(RecipientTally.objects.filter(account=account).values_list("shard", flat=True))
    assert len(shards) > 1 and shards <= set(range(RecipientTally.SHARDS))


@pytest.mark.django_db
def test_the_reports_total_of_every_recipient_is_the_tally(api, alice, settings):
    """The total without filters is read from the tally, not counted, so it is exact above
    the size where counts are remembered; a filter still counts."""
    settings.MIFUMO_COUNT_CACHE_THRESHOLD = 1
    message_send(account=alice, text="hi", recipients=[TZ, "+255754000111"])
    for expected in (2, 3, 4):
        total = api.get("sms/delivery-reports/").json()["data"]["pagination"]["total"]
        assert total == expected
        message_send(account=alice, text="hi", recipients=[TZ])
    # The tally is what the total reads: a tally set by hand shows.
    RecipientTally.objects.filter(account=alice).update(total=0)
    first = RecipientTally.objects.filter(account=alice).order_by("id")[0]
    RecipientTally.objects.filter(pk=first.pk).update(total=41)
    page = api.get("sms/delivery-reports/").json()["data"]
    assert page["pagination"]["total"] == 41
    assert len(page["reports"]) == 5
    settings.MIFUMO_COUNT_CACHE_THRESHOLD = 1000
    queued = api.get("sms/delivery-reports/", {"status": "queued"}).json()["data"]
    assert queued["pagination"]["total"] == 5


@pytest.mark.django_db
def test_a_test_keys_reports_total_counts_its_test_messages(alice, make_key):
    message_send(account=alice, text="live", recipients=[TZ])
    test_key = make_key(alice, test=True, name="test key")
    test_api = Api(test_key.raw)
    assert_envelope(test_api.post("sms/send/", {"message": "t", "recipients": [TZ]}), 200)
    body = test_api.get("sms/delivery-reports/").json()["data"]
    assert body["pagination"]["total"] == 1 and len(body["reports"]) == 1
    assert recipient_total(account_id=alice.pk) == 2
    assert Decimal(body["reports"][0]["cost"]) >= 0


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_the_rows_already_there(make_account):
    alice = make_account("alice")
    bob = make_account("bob")
    executor = MigrationExecutor(connection)
    before, after = [("sms", "0008_recipient_not_before_queued_index")], [("sms", LATEST)]
    executor.migrate(before)
    try:
        message_send(account=alice, text="hi", recipients=[TZ, "+255754000111"])
        message_send(account=bob, text="hi", recipients=[TZ])
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('sms_recipienttally')")
            assert cursor.fetchone() == (None,)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
    assert tallied() == {alice.pk: 2, bob.pk: 1}
    message_send(account=bob, text="hi", recipients=[TZ])
    assert tallied() == {alice.pk: 2, bob.pk: 2}
