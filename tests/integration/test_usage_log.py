import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from integration import usage
from integration.models import ApiRequestLog
from integration.usage import UsageBuffer
from mifumo.db import copy_rows


@pytest.mark.django_db
def test_every_request_is_logged_with_route_status_latency_and_error_code(api, alice_key, anon):
    api.get("sms/balance/")
    api.get("sms/status/msg_01ARZ3NDEKTSV4RRFFQ69G5FAV/")
    api.post("sms/send/", {"message": "", "recipients": ["+255712345678"]})
    anon.get("sms/balance/")
    rows = list(ApiRequestLog.objects.order_by("id"))
    assert [(r.method, r.route, r.status_code, r.error_code) for r in rows] == [
        ("GET", "api/integration/v1/sms/balance/", 200, ""),
        ("GET", "api/integration/v1/sms/status/<str:message_id>/", 404, "NOT_FOUND"),
        ("POST", "api/integration/v1/sms/send/", 400, "VALIDATION_ERROR"),
        ("GET", "api/integration/v1/sms/balance/", 401, "INVALID_CREDENTIALS"),
    ]
    assert all(r.latency_ms > 0 for r in rows)
    assert {r.api_key_id for r in rows[:3]} == {alice_key.api_key.pk}
    assert rows[0].account_id == alice_key.api_key.account_id
    assert rows[3].account_id is None and rows[3].api_key_id is None


@pytest.mark.django_db
def test_rows_are_buffered_and_written_in_one_batch(
    alice, settings, django_assert_num_queries, monkeypatch
):
    settings.MIFUMO_USAGE_LOG_FLUSH_SIZE = 3
    settings.MIFUMO_USAGE_LOG_FLUSH_SECONDS = 3600
    buffer = UsageBuffer()

    def row():
        return ApiRequestLog(
            account=alice, method="GET", route="x", status_code=200, latency_ms=1.0
        )

    with django_assert_num_queries(0):
        buffer.add(row())
        buffer.add(row())
    assert ApiRequestLog.objects.count() == 0
    written = []

    def copy_and_count(*args):
        written.append(args)
        copy_rows(*args)

    monkeypatch.setattr(usage, "copy_rows", copy_and_count)
    buffer.add(row())
    assert len(written) == 1  # one COPY for the three
    assert ApiRequestLog.objects.count() == 3
    assert set(ApiRequestLog.objects.values_list("account_id", "route", "status_code")) == {
        (alice.pk, "x", 200)
    }


@pytest.mark.django_db
def test_a_failing_write_never_fails_the_request(api, monkeypatch, settings):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(usage, "copy_rows", broken)
    monkeypatch.setattr(usage.buffer, "_rows", [])
    settings.MIFUMO_USAGE_LOG_FLUSH_SIZE = 1  # every request writes, and this one fails
    assert api.get("sms/balance/").status_code == 200
    assert ApiRequestLog.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_process_thread_writes_rows_within_the_interval_without_a_request_paying(
    alice, settings, django_assert_num_queries
):
    settings.MIFUMO_USAGE_LOG_FLUSH_SIZE = 1000
    settings.MIFUMO_USAGE_LOG_FLUSH_SECONDS = 1
    buffer = UsageBuffer()
    with django_assert_num_queries(0):
        for _ in range(5):
            buffer.add(
                ApiRequestLog(
                    account=alice, method="GET", route="x", status_code=200, latency_ms=1.0
                )
            )
    deadline = time.monotonic() + 5
    while ApiRequestLog.objects.count() < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ApiRequestLog.objects.count() == 5


@pytest.mark.django_db
def test_each_row_pays_for_the_indexes_its_lookups_use_and_no_more(alice):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname",
            [ApiRequestLog._meta.db_table],
        )
        indexed = [row[0].split(" USING btree ")[1] for row in cursor.fetchall()]
        assert sorted(indexed) == ["(account_id, created_at)", "(api_key_id)", "(id)"]
        # The usage page's lookup by account and time takes the account-first index.
        cursor.execute("SET LOCAL enable_seqscan = off")
        start = timezone.now() - timedelta(days=30)
        sql, params = ApiRequestLog.objects.filter(
            account=alice, created_at__gte=start
        ).query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "usage_account_time" in plan, plan
