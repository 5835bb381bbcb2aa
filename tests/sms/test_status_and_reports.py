from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mifumo.api.fields import iso
from sms import dispatch, selectors
from sms.models import Recipient
from sms.selectors import derive_status, recipient_was_refunded
from sms.services import message_send
from tests.helpers import assert_envelope

TZ = "+255712345678"


def sent_and_delivered(account, phones, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return message_send(account=account, text="Habari", recipients=phones).message


@pytest.mark.django_db
def test_status_of_a_delivered_message_matches_the_guide(
    api, alice, django_capture_on_commit_callbacks
):
    message = sent_and_delivered(alice, [TZ], django_capture_on_commit_callbacks)
    body = assert_envelope(api.get(f"sms/status/{message.id}/"), 200)
    assert body["message"] == "Message status retrieved successfully"
    data = body["data"]
    assert data["message_id"] == message.id and data["status"] == "delivered"
    assert data["delivery_time"].endswith("Z")
    assert data["recipients"] == [
        {
            "phone": TZ,
            "status": "delivered",
            "text": "Habari",
            "segments": 1,
            "cost": 10.0,
            "delivery_time": data["delivery_time"],
            "sent_at": data["recipients"][0]["sent_at"],
            "error_code": None,
            "error_message": None,
        }
    ]
    assert data["sender_id"] == "MIFUMO" and data["cost"] == 10.0 and data["currency"] == "TZS"
    assert data["segments"] == 1 and data["counts"] == {"delivered": 1}
    assert data["pagination"] == {"page": 1, "per_page": 100, "total": 1, "pages": 1}


@pytest.mark.django_db
def test_status_shows_failures_with_their_codes(api, alice, django_capture_on_commit_callbacks):
    message = sent_and_delivered(alice, [TZ, "+255712340001"], django_capture_on_commit_callbacks)
    data = api.get(f"sms/status/{message.id}/").json()["data"]
    assert data["status"] == "partially_delivered"
    failed = next(r for r in data["recipients"] if r["status"] == "failed")
    assert failed["error_code"] == "UNDELIVERABLE" and failed["error_message"]


@pytest.mark.django_db
def test_delivery_time_is_the_last_delivery_and_only_once_something_was_delivered(
    api, alice, django_capture_on_commit_callbacks
):
    phones = [TZ, "+255712345679", "+255712340001"]
    message = sent_and_delivered(alice, phones, django_capture_on_commit_callbacks)
    rows = Recipient.objects.filter(message=message)
    first = timezone.now() - timedelta(minutes=10)
    rows.filter(phone=TZ).update(delivered_at=first)
    rows.filter(phone="+255712345679").update(delivered_at=first + timedelta(minutes=3))
    # A failed recipient's time is not a delivery time, however late.
    rows.filter(phone="+255712340001").update(delivered_at=first + timedelta(minutes=9))
    data = api.get(f"sms/status/{message.id}/").json()["data"]
    assert data["status"] == "partially_delivered"
    assert data["delivery_time"] == iso(first + timedelta(minutes=3))
    waiting = message_send(account=alice, text="Bado", recipients=[TZ]).message
    data = api.get(f"sms/status/{waiting.id}/").json()["data"]
    assert (data["status"], data["delivery_time"]) == ("queued", None)


@pytest.mark.django_db
def test_status_reads_the_message_in_one_statement_however_many_recipients(api, alice):
    one = message_send(account=alice, text="Moja", recipients=[TZ]).message
    many = message_send(
        account=alice, text="Mia", recipients=[f"+2557120001{i:02d}" for i in range(100)]
    ).message
    for message in (one, many):
        with CaptureQueriesContext(connection) as queries:
            assert_envelope(api.get(f"sms/status/{message.id}/"), 200)
        # The message with its refund, the counts with the delivery time and the page in one
        # statement, and nothing else but the key's authentication.
        about_it = [q["sql"] for q in queries.captured_queries if message.id in q["sql"]]
        assert len(about_it) == 1, about_it


@pytest.mark.django_db
def test_status_of_another_accounts_message_is_404(api, bob, django_capture_on_commit_callbacks):
    message = sent_and_delivered(bob, [TZ], django_capture_on_commit_callbacks)
    assert_envelope(api.get(f"sms/status/{message.id}/"), 404, "NOT_FOUND")
    assert_envelope(api.get("sms/status/msg_01ARZ3NDEKTSV4RRFFQ69G5FAV/"), 404, "NOT_FOUND")


@pytest.mark.django_db
def test_status_paginates_recipients_with_counts(api, alice):
    phones = [f"+2557120000{i:02d}" for i in range(25)]
    message = message_send(account=alice, text="hi", recipients=phones).message
    data = api.get(f"sms/status/{message.id}/", {"page": 3, "per_page": 10}).json()["data"]
    assert len(data["recipients"]) == 5
    assert data["pagination"] == {"page": 3, "per_page": 10, "total": 25, "pages": 3}
    assert data["counts"] == {"queued": 25} and data["status"] == "queued"
    assert_envelope(api.get(f"sms/status/{message.id}/", {"per_page": 0}), 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"scheduled": 2}, "scheduled"),
        ({"queued": 1, "sent": 1}, "queued"),
        ({"submitting": 3}, "queued"),
        ({"submitting": 1, "delivered": 1}, "queued"),
        ({"submitting": 1, "sent": 1}, "sent"),
        ({"sent": 2}, "sent"),
        ({"delivered": 2}, "delivered"),
        ({"failed": 2}, "failed"),
        ({"delivered": 1, "failed": 1}, "partially_delivered"),
        ({"canceled": 3}, "canceled"),
    ],
)
def test_message_status_is_derived_from_recipients(counts, expected):
    assert derive_status(counts) == expected


def make_history(account):
    """Three messages at known times with known recipient states."""
    base = timezone.now() - timedelta(days=10)
    ids = []
    for day, phones in ((0, [TZ]), (2, [TZ, "+255754000111"]), (4, ["+255689000222"])):
        message = message_send(account=account, text="hi", recipients=phones).message
        Recipient.objects.filter(message=message).update(created_at=base + timedelta(days=day))
        ids.append(message.id)
    Recipient.objects.filter(message_id=ids[1], phone=TZ).update(status="delivered")
    Recipient.objects.filter(message_id=ids[2]).update(status="failed", error_code="EXPIRED")
    return base, ids


@pytest.mark.django_db
def test_delivery_reports_are_one_row_per_recipient_newest_first(api, alice, bob):
    _, ids = make_history(alice)
    make_history(bob)
    body = assert_envelope(api.get("sms/delivery-reports/"), 200)
    rows = body["data"]["reports"]
    assert [r["message_id"] for r in rows] == [ids[2], ids[1], ids[1], ids[0]]
    assert body["data"]["pagination"] == {"page": 1, "per_page": 50, "total": 4, "pages": 1}
    assert set(rows[0]) == {
        "message_id",
        "phone",
        "status",
        "sender_id",
        "sent_at",
        "delivery_time",
        "error_code",
        "cost",
        "currency",
        "created_at",
    }
    assert rows[0]["error_code"] == "EXPIRED" and rows[0]["cost"] == 10.0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "statements", "tallies"),
    [
        # Every recipient of the account: the total is its tally, read with the page (alone
        # when the page has no rows).
        ({}, 1, 1),
        ({"page": 9}, 1, 2),
        # Filtered: counted, then the page read only when it has rows.
        ({"status": "queued"}, 2, 0),
        ({"status": "queued", "page": 9}, 1, 0),
    ],
)
def test_delivery_reports_statements(api, alice, params, statements, tallies):
    make_history(alice)
    with CaptureQueriesContext(connection) as queries:
        assert_envelope(api.get("sms/delivery-reports/", params), 200)
    reads = [q["sql"] for q in queries.captured_queries if '"sms_recipient"' in q["sql"]]
    assert len(reads) == statements, reads
    tally = [q["sql"] for q in queries.captured_queries if '"sms_recipienttally"' in q["sql"]]
    assert len(tally) == tallies, tally


@pytest.mark.django_db
def test_delivery_reports_past_the_last_page_walk_no_recipients(api, alice):
    """The tally and the page share a statement; past the total its page part never runs."""
    make_history(alice)
    with CaptureQueriesContext(connection) as queries:
        body = assert_envelope(api.get("sms/delivery-reports/", {"page": 9}), 200)
    assert body["data"]["reports"] == []
    assert body["data"]["pagination"] == {"page": 9, "per_page": 50, "total": 4, "pages": 1}
    (sql,) = [q["sql"] for q in queries.captured_queries if '"sms_recipient"' in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}")
        plan = [line for (line,) in cursor.fetchall()]
    scans = [i for i, line in enumerate(plan) if "sms_recipient " in line and "Scan" in line]
    assert scans, plan
    # The scan, or the node above it that decides for it, never ran.
    assert any("never executed" in plan[i] for i in scans) or any(
        "never executed" in line for line in plan[: scans[0]]
    ), plan


@pytest.mark.django_db
def test_delivery_reports_pages_with_their_tally_match_the_page_read_alone(alice, bob):
    """Every page read with the tally holds exactly the rows, in the order, that the page's
    own statement reads: recipients sharing a creation time are ordered by id both ways."""
    now = timezone.now()
    for n in range(7):
        phones = [f"+25571200{n}{i:03d}" for i in range(n % 3 + 1)]
        message = message_send(account=alice, text="hi", recipients=phones).message
        moment = now - timedelta(hours=n // 2)
        Recipient.objects.filter(message=message).update(created_at=moment)
    message_send(account=bob, text="hi", recipients=[TZ])
    matching = selectors.delivery_reports(account=alice)
    assert matching.where == selectors._account_only()
    everything = matching._page(0, 100)
    assert len(everything) == 13
    for offset, limit in ((0, 5), (5, 5), (10, 5), (12, 1), (0, 100), (13, 5), (40, 5)):
        total, rows = matching.read(offset, limit)
        assert total == 13
        assert rows == matching._page(offset, limit) == everything[offset : offset + limit]


@pytest.mark.django_db
def test_delivery_reports_filter_by_status_and_dates(api, alice):
    base, ids = make_history(alice)
    delivered = api.get("sms/delivery-reports/", {"status": "delivered"}).json()["data"]
    assert [(r["message_id"], r["phone"]) for r in delivered["reports"]] == [(ids[1], TZ)]
    start = (base + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (base + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    window = api.get("sms/delivery-reports/", {"start_date": start, "end_date": end}).json()
    assert {r["message_id"] for r in window["data"]["reports"]} == {ids[1]}
    day = (base + timedelta(days=4)).date().isoformat()
    by_day = api.get("sms/delivery-reports/", {"start_date": day, "end_date": day}).json()
    assert {r["message_id"] for r in by_day["data"]["reports"]} == {ids[2]}


@pytest.mark.django_db
def test_delivery_reports_pagination_edges(api, alice):
    make_history(alice)
    page = api.get("sms/delivery-reports/", {"per_page": 3, "page": 2}).json()["data"]
    assert len(page["reports"]) == 1
    assert page["pagination"] == {"page": 2, "per_page": 3, "total": 4, "pages": 2}
    beyond = api.get("sms/delivery-reports/", {"per_page": 3, "page": 9}).json()["data"]
    assert beyond["reports"] == [] and beyond["pagination"]["total"] == 4
    assert api.get("sms/delivery-reports/", {"per_page": 100}).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {"status": "lost"},
        {"start_date": "yesterday"},
        {"end_date": "2024-13-45"},
        {"page": "0"},
        {"page": "x"},
        {"per_page": "101"},
        {"per_page": "-5"},
    ],
)
def test_bad_report_filters_are_400_never_500(api, alice, params):
    body = assert_envelope(api.get("sms/delivery-reports/", params), 400, "VALIDATION_ERROR")
    assert set(body["details"]) == set(params)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["sms/delivery-reports/", "sms/messages/", "sms/inbound/"])
def test_an_end_date_before_the_start_date_is_400_naming_it(api, path):
    backwards = {"start_date": "2025-02-01", "end_date": "2025-01-31"}
    body = assert_envelope(api.get(path, backwards), 400, "VALIDATION_ERROR")
    assert body["details"] == {"end_date": ["is before start_date"]}
    one_day = {"start_date": "2025-02-01", "end_date": "2025-02-01"}
    assert_envelope(api.get(path, one_day), 200)


@pytest.mark.django_db
def test_messages_list_and_detail(api, alice, bob):
    _, ids = make_history(alice)
    make_history(bob)
    body = assert_envelope(api.get("sms/messages/"), 200)
    assert [m["message_id"] for m in body["data"]["messages"]] == ids[::-1]
    assert body["data"]["messages"][0]["status"] == "failed"
    by_phone = api.get("sms/messages/", {"phone": "0754000111"}).json()["data"]["messages"]
    assert [m["message_id"] for m in by_phone] == [ids[1]]
    assert_envelope(api.get("sms/messages/", {"phone": "12"}), 400, "VALIDATION_ERROR")
    detail = assert_envelope(api.get(f"sms/messages/{ids[1]}/"), 200)["data"]
    assert detail["counts"] == {"delivered": 1, "queued": 1} and detail["text"] == "hi"


@pytest.mark.django_db
def test_message_detail_of_another_account_is_404(api, bob):
    message = message_send(account=bob, text="hi", recipients=[TZ]).message
    assert_envelope(api.get(f"sms/messages/{message.id}/"), 404, "NOT_FOUND")
    assert_envelope(api.post(f"sms/{message.id}/cancel/"), 404, "NOT_FOUND")


@pytest.mark.django_db
def test_dispatched_report_rows_carry_sent_at(api, alice, locmem):
    message = message_send(account=alice, text="hi", recipients=[TZ]).message
    dispatch.message_dispatch(message_id=message.id)
    row = api.get("sms/delivery-reports/").json()["data"]["reports"][0]
    assert row["status"] == "sent" and row["sent_at"].endswith("Z")


@pytest.mark.django_db
def test_large_report_totals_are_cached_briefly_and_small_ones_never(api, alice, settings):
    make_history(alice)
    since = {"start_date": "2000-01-01"}
    settings.MIFUMO_COUNT_CACHE_THRESHOLD = 3
    first = api.get("sms/delivery-reports/", since).json()["data"]["pagination"]["total"]
    message_send(account=alice, text="more", recipients=["+255688000333"])
    # Within the cache window a large filtered total may lag behind new rows ...
    assert api.get("sms/delivery-reports/", since).json()["data"]["pagination"]["total"] == first
    # ... but not the total of every recipient, which is the account's tally ...
    everything = api.get("sms/delivery-reports/").json()["data"]["pagination"]["total"]
    assert everything == first + 1
    # ... and a small result set is always counted afresh.
    settings.MIFUMO_COUNT_CACHE_THRESHOLD = 1000
    filtered = api.get("sms/delivery-reports/", {"status": "queued"}).json()["data"]
    assert filtered["pagination"]["total"] == 3


@pytest.mark.django_db
def test_refunds_are_reported_beside_the_cost(api, alice, django_capture_on_commit_callbacks):
    # +…0002 is rejected at submit (refunded); +…0001 fails after sending (not refunded).
    phones = ["+255712340001", "+255712340002", "+255712345678"]
    with django_capture_on_commit_callbacks(execute=True):
        sent = assert_envelope(
            api.post("sms/send/", {"message": "Habari", "recipients": phones}), 200
        )["data"]
    assert sent["cost"] == 30.0 and "refunded" not in sent  # the guide's send answer
    message_id = sent["message_id"]
    status = assert_envelope(api.get(f"sms/status/{message_id}/"), 200)["data"]
    assert (status["cost"], status["refunded"]) == (30.0, 10.0)
    detail = assert_envelope(api.get(f"sms/messages/{message_id}/"), 200)["data"]
    assert (detail["cost"], detail["refunded"]) == (30.0, 10.0)
    listed = assert_envelope(api.get("sms/messages/"), 200)["data"]["messages"]
    assert [(m["message_id"], m["refunded"]) for m in listed] == [(message_id, 10.0)]
    rows = {r.phone: r for r in Recipient.objects.filter(message_id=message_id)}
    assert [recipient_was_refunded(rows[p], is_test=False) for p in phones] == [False, True, False]


@pytest.mark.django_db
def test_a_message_without_refunds_reports_zero(api, alice):
    sent = assert_envelope(
        api.post("sms/send/", {"message": "Habari", "recipients": ["+255712345678"]}), 200
    )["data"]
    status = assert_envelope(api.get(f"sms/status/{sent['message_id']}/"), 200)["data"]
    assert status["refunded"] == 0.0
