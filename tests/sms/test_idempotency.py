from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection

from integration.models import LedgerEntry
from sms.models import Message
from tests.helpers import Api, assert_envelope

BODY = {"message": "Habari", "recipients": ["+255712345678"]}


@pytest.mark.django_db
def test_same_key_and_body_returns_the_first_response_and_does_nothing_again(api, alice):
    first = api.post("sms/send/", BODY, HTTP_IDEMPOTENCY_KEY="order-42")
    second = api.post("sms/send/", BODY, HTTP_IDEMPOTENCY_KEY="order-42")
    assert_envelope(first, 200)
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Message.objects.count() == 1
    alice.refresh_from_db()
    assert alice.balance == Decimal("4990.00")


@pytest.mark.django_db
def test_same_key_with_another_body_is_a_conflict(api):
    api.post("sms/send/", BODY, HTTP_IDEMPOTENCY_KEY="order-43")
    other = {**BODY, "message": "Different"}
    body = assert_envelope(
        api.post("sms/send/", other, HTTP_IDEMPOTENCY_KEY="order-43"), 409, "CONFLICT"
    )
    assert body["details"] == {"idempotency_key": "order-43"}
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_keys_are_per_account(api, bob, api_for):
    api.post("sms/send/", BODY, HTTP_IDEMPOTENCY_KEY="shared")
    assert_envelope(api_for(bob).post("sms/send/", BODY, HTTP_IDEMPOTENCY_KEY="shared"), 200)
    assert Message.objects.count() == 2


@pytest.mark.django_db
def test_test_and_live_keys_of_one_account_keep_their_own_records(alice, api_for, locmem):
    """One order id sent first from a test key, then from a live one: the live send is sent
    and charged, not answered with the test message; each key replays only its own."""
    test, live = api_for(alice, test=True), api_for(alice)
    rehearsal = assert_envelope(test.post("sms/send/", BODY, HTTP_IDEMPOTENCY_KEY="order-7"), 200)
    sent = assert_envelope(live.post("sms/send/", BODY, HTTP_IDEMPOTENCY_KEY="order-7"), 200)
    assert (rehearsal["data"]["test"], sent["data"]["test"]) == (True, False)
    assert sent["data"]["message_id"] != rehearsal["data"]["message_id"]
    assert sorted(Message.objects.values_list("is_test", flat=True)) == [False, True]
    alice.refresh_from_db()
    assert alice.balance == Decimal("4990.00")
    again = live.post("sms/send/", BODY, HTTP_IDEMPOTENCY_KEY="order-7")
    assert again.json() == sent and again["Idempotent-Replayed"] == "true"
    again = test.post("sms/send/", BODY, HTTP_IDEMPOTENCY_KEY="order-7")
    assert again.json() == rehearsal and again["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_a_failed_request_can_be_retried_with_the_same_key(api, alice):
    bad = {**BODY, "recipients": ["nonsense"]}
    assert_envelope(
        api.post("sms/send/", bad, HTTP_IDEMPOTENCY_KEY="retry-me"), 400, "INVALID_PHONE"
    )
    assert_envelope(api.post("sms/send/", BODY, HTTP_IDEMPOTENCY_KEY="retry-me"), 200)


@pytest.mark.django_db
def test_an_overlong_key_is_a_validation_error(api):
    assert_envelope(
        api.post("sms/send/", BODY, HTTP_IDEMPOTENCY_KEY="k" * 256), 400, "VALIDATION_ERROR"
    )


@pytest.mark.django_db
def test_without_a_key_every_post_sends(api):
    api.post("sms/send/", BODY)
    api.post("sms/send/", BODY)
    assert Message.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_make_one_message_and_one_debit(alice, alice_key):
    def post(_: int) -> int:
        try:
            response = Api(alice_key.raw).post("sms/send/", BODY, HTTP_IDEMPOTENCY_KEY="race")
            return response.status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(post, range(24)))
    assert codes == [200] * 24
    assert Message.objects.count() == 1
    assert LedgerEntry.objects.filter(account=alice, kind="debit").count() == 1
    alice.refresh_from_db()
    assert alice.balance == Decimal("4990.00")


def test_views_that_call_out_are_not_wrapped_in_the_idempotency_transaction():
    from integration.views import ApiView
    from sms.apis import SendApi
    from webhooks.apis import WebhookTestApi

    assert getattr(SendApi.post, "__wrapped__", None) is not None
    assert getattr(WebhookTestApi.post, "__wrapped__", None) is None
    assert ApiView.idempotent_post is True
