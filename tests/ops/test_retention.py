"""Retention runs by itself: beat sends the daily purges of old messages, of the usage log
and of the activity log, each with its own age, and a worker carries them out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.tasks import purge_activity_log
from integration.models import ApiRequestLog, AuditEvent
from integration.tasks import purge_usage_log
from mifumo.celery import app as celery_app
from mifumo.db import delete_older_than
from sms.models import Message, Recipient
from sms.tasks import purge_messages
from tests.dashboard.data import make_request_log
from tests.ops.test_purge_messages import make_message
from tests.workers import start_beat, wait_until

S = Recipient.Status
DAY = 24 * 3600.0


def audit(account: Any, age_days: float) -> AuditEvent:
    return AuditEvent.objects.create(
        account=account,
        action="api_key.created",
        created_at=timezone.now() - timedelta(days=age_days),
    )


def usage(account: Any, age_days: float) -> ApiRequestLog:
    return make_request_log(account, created_at=timezone.now() - timedelta(days=age_days))


def test_beat_runs_each_purge_once_a_day() -> None:
    schedule = celery_app.conf.beat_schedule
    for entry, task in (
        ("purge-messages", "sms.tasks.purge_messages"),
        ("purge-usage-log", "integration.tasks.purge_usage_log"),
        ("purge-activity-log", "dashboard.tasks.purge_activity_log"),
    ):
        assert schedule[entry]["task"] == task
        assert schedule[entry]["schedule"] == DAY
        assert task in celery_app.tasks


def test_the_defaults_keep_usage_90_days_activity_and_messages_365() -> None:
    from django.conf import settings

    assert settings.MIFUMO_USAGE_LOG_RETENTION_DAYS == 90
    assert settings.MIFUMO_ACTIVITY_LOG_RETENTION_DAYS == 365
    assert settings.MIFUMO_RETENTION_DAYS == 365


@pytest.mark.django_db
def test_the_usage_log_keeps_its_own_age(alice, bob, settings) -> None:
    kept = [usage(alice, 89).pk, usage(bob, 1).pk, usage(alice, 0).pk]
    for age in (91, 200, 91):
        usage(bob, age)
    assert purge_usage_log() == 3
    assert sorted(ApiRequestLog.objects.values_list("pk", flat=True)) == sorted(kept)
    settings.MIFUMO_USAGE_LOG_RETENTION_DAYS = 30
    assert purge_usage_log() == 1
    assert ApiRequestLog.objects.count() == 2


@pytest.mark.django_db
def test_old_rows_go_a_batch_per_statement(alice) -> None:
    for _ in range(7):
        usage(alice, 120)
    usage(alice, 10)
    with CaptureQueriesContext(connection) as queries:
        assert delete_older_than(ApiRequestLog, 90, batch=3) == 7
    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3  # 3 + 3 + 1
    assert ApiRequestLog.objects.count() == 1


@pytest.mark.django_db
def test_the_activity_log_keeps_its_own_age(alice, settings) -> None:
    recent = audit(alice, 364)
    audit(alice, 366)
    audit(alice, 1000)
    assert purge_activity_log() == 2
    assert list(AuditEvent.objects.values_list("pk", flat=True)) == [recent.pk]
    settings.MIFUMO_ACTIVITY_LOG_RETENTION_DAYS = 100
    assert purge_activity_log() == 1
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_zero_days_keeps_everything(alice, settings) -> None:
    settings.MIFUMO_USAGE_LOG_RETENTION_DAYS = 0
    settings.MIFUMO_ACTIVITY_LOG_RETENTION_DAYS = 0
    settings.MIFUMO_RETENTION_DAYS = 0
    usage(alice, 5000)
    audit(alice, 5000)
    make_message(alice, age_days=5000, statuses=[S.DELIVERED])
    assert purge_usage_log() == 0 and purge_activity_log() == 0
    assert purge_messages() == "retention off"
    assert ApiRequestLog.objects.count() == AuditEvent.objects.count() == Message.objects.count()


@pytest.mark.django_db
def test_old_final_messages_go_with_the_retention_days(alice, settings) -> None:
    settings.MIFUMO_RETENTION_DAYS = 30
    old = make_message(alice, age_days=31, statuses=[S.DELIVERED, S.FAILED])
    waiting = make_message(alice, age_days=31, statuses=[S.DELIVERED, S.SENT])
    young = make_message(alice, age_days=29, statuses=[S.DELIVERED])
    summary = purge_messages()
    assert summary.startswith("Purged 1 messages (2 recipients)"), summary
    assert set(Message.objects.values_list("pk", flat=True)) == {waiting.pk, young.pk}
    assert not Recipient.objects.filter(message_id=old.pk).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_beat_and_a_worker_purge_by_themselves(alice, celery_worker_factory, tmp_path) -> None:
    ages = {
        "MIFUMO_RETENTION_DAYS": "30",
        "MIFUMO_USAGE_LOG_RETENTION_DAYS": "20",
        "MIFUMO_ACTIVITY_LOG_RETENTION_DAYS": "10",
    }
    old_usage, new_usage = usage(alice, 21), usage(alice, 19)
    old_audit, new_audit = audit(alice, 11), audit(alice, 9)
    old_message = make_message(alice, age_days=31, statuses=[S.DELIVERED])
    new_message = make_message(alice, age_days=29, statuses=[S.DELIVERED])
    celery_worker_factory(queues="default", **ages)
    beat = start_beat(tmp_path, MIFUMO_RETENTION_EVERY_SECONDS="1", **ages)
    try:

        def purged() -> bool:
            return not (
                ApiRequestLog.objects.filter(pk=old_usage.pk).exists()
                or AuditEvent.objects.filter(pk=old_audit.pk).exists()
                or Message.objects.filter(pk=old_message.pk).exists()
            )

        wait_until(purged, timeout=60, interval=0.5)
    finally:
        beat.kill()
    assert ApiRequestLog.objects.filter(pk=new_usage.pk).exists()
    assert AuditEvent.objects.filter(pk=new_audit.pk).exists()
    assert Message.objects.filter(pk=new_message.pk).exists()
