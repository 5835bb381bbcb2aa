from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from integration.models import Account, LedgerEntry
from sms import dispatch
from sms.models import Recipient
from sms.services import message_send
from tests.helpers import Api


@pytest.mark.django_db(transaction=True)
def test_200_concurrent_sends_against_a_balance_for_100_accept_exactly_100(make_account, make_key):
    account = make_account("exact", balance="1000.00")
    Account.objects.filter(pk=account.pk).update(sms_per_minute=1000)
    raw = make_key(account).raw
    body = {"message": "Habari", "recipients": ["+255712345678"]}

    def post(_: int) -> int:
        try:
            return Api(raw).post("sms/send/", body).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(post, range(200)))
    assert codes.count(200) == 100
    assert codes.count(402) == 100
    account.refresh_from_db()
    assert account.balance == Decimal("0.00")
    ledger = LedgerEntry.objects.filter(account=account)
    assert ledger.filter(kind="debit").count() == 100
    assert ledger.aggregate(s=Sum("amount"))["s"] == Decimal("0.00")
    assert Recipient.objects.filter(account=account).count() == 100


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_never_submit_one_recipient_twice(
    make_account, locmem, settings, monkeypatch
):
    alice = make_account("alice", balance="10000.00")
    settings.MIFUMO_DISPATCH_BATCH = 25
    phones = [f"+25571200{i:04d}" for i in range(600)]
    # Store the message without the automatic dispatch; the threads below race for it.
    monkeypatch.setattr("sms.services._enqueue_dispatch", lambda message_id: None)
    message = message_send(account=alice, text="hi", recipients=phones).message

    def run(_: int) -> int:
        try:
            return dispatch.message_dispatch(message_id=message.id).submitted
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        submitted = list(pool.map(run, range(4)))
    assert sum(submitted) == 600
    seen = [sms.to for sms in locmem.outbox]
    assert len(seen) == 600 and len(set(seen)) == 600
