"""/metrics: Prometheus counters and gauges, behind a bearer token."""

from __future__ import annotations

import urllib.request

import pytest
import redis
from django.conf import settings as django_settings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from mifumo import metrics
from sms import metrics as sms_metrics
from sms.carriers.base import CarrierError, OutboundSms, SubmitResult
from tests.helpers import assert_envelope
from tests.ops.stack import free_port, http

TOKEN = "scrape-token-0123456789"
SEND = "/api/integration/v1/sms/send/"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(response.content.decode())


def value(scraped, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.django_db
def test_metrics_do_not_exist_without_the_token(client, settings):
    settings.MIFUMO_METRICS_TOKEN = None
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404
    settings.MIFUMO_METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION=TOKEN).status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_send_shows_in_the_counters_and_the_gauges(api, client, settings):
    settings.MIFUMO_METRICS_TOKEN = TOKEN
    before = scrape(client)
    response = api.post("sms/send/", {"message": "Habari", "recipients": ["+255712345678"]})
    assert_envelope(response, 200)
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("mifumo_http_requests_total", method="POST", route=SEND, status="200") == 1
    assert grew("mifumo_http_request_duration_seconds_count", method="POST", route=SEND) == 1
    assert grew("mifumo_balance_debits_total", currency="TZS") == 1
    assert grew("mifumo_balance_debited_amount_total", currency="TZS") == 10.0
    # Celery runs eagerly here: the simulator delivered before the second scrape.
    assert grew("mifumo_recipient_status_changes_total", status="sent") == 1
    assert grew("mifumo_recipient_status_changes_total", status="delivered") == 1
    assert value(after, "mifumo_recipients_final_recent", status="delivered") == 1
    assert value(after, "mifumo_recipients_pending", status="queued") == 0
    assert ("mifumo_recipients_pending", frozenset({("status", "scheduled")})) in after


@pytest.mark.django_db(transaction=True)
def test_a_failed_webhook_attempt_is_counted(api, client, settings):
    settings.MIFUMO_METRICS_TOKEN = TOKEN
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    settings.MIFUMO_WEBHOOK_TIMEOUT = 1
    before = value(scrape(client), "mifumo_webhook_attempts_total", outcome="failed")
    port = free_port()  # nothing listens there
    response = api.post(
        "sms/send/",
        {
            "message": "Habari",
            "recipients": ["+255712345678"],
            "webhook_url": f"http://127.0.0.1:{port}/hook",
        },
    )
    assert_envelope(response, 200)
    after = value(scrape(client), "mifumo_webhook_attempts_total", outcome="failed")
    assert after > before


def test_carrier_submissions_are_timed_and_counted():
    carrier = "unit-carrier"
    batch = [OutboundSms(i, "msg_x", f"+25571234567{i}", "MIFUMO", "hi") for i in range(3)]
    results = [
        SubmitResult.ok(batch[0], "c-0"),
        SubmitResult.ok(batch[1], "c-1"),
        SubmitResult.rejected(batch[2], "INVALID_DESTINATION", "no"),
    ]
    sms_metrics.observe_carrier_submit(carrier=carrier, seconds=0.01, results=results)
    sms_metrics.observe_carrier_submit(
        carrier=carrier,
        seconds=0.01,
        error=CarrierError("bind refused", code="CARRIER_UNAVAILABLE"),
    )

    def sample(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"carrier": carrier, **labels})

    assert sample("mifumo_carrier_submissions_total", outcome="accepted") == 2
    assert sample("mifumo_carrier_submissions_total", outcome="rejected") == 1
    assert sample("mifumo_carrier_errors_total", code="INVALID_DESTINATION") == 1
    assert sample("mifumo_carrier_errors_total", code="CARRIER_UNAVAILABLE") == 1
    assert sample("mifumo_carrier_submit_duration_seconds_count") == 2


@pytest.mark.django_db
def test_queue_depths_come_from_redis(client, settings):
    settings.MIFUMO_METRICS_TOKEN = TOKEN
    scraped = scrape(client)
    broker = redis.Redis.from_url(str(django_settings.REDIS_URL))
    for queue in ("dispatch", "receipts", "webhooks", "default"):
        assert value(scraped, "mifumo_queue_depth", queue=queue) == broker.llen(queue)
    assert ("mifumo_queue_unacked", frozenset()) in scraped


def test_a_worker_serves_its_metrics_on_its_own_port(settings):
    settings.MIFUMO_METRICS_TOKEN = TOKEN
    settings.MIFUMO_METRICS_PORT = free_port()
    server = metrics.serve_worker_metrics()
    assert server is not None
    try:
        url = f"http://127.0.0.1:{settings.MIFUMO_METRICS_PORT}/metrics"
        assert http(url).status == 404
        assert http(url, headers={"Authorization": "Bearer nope"}).status == 404
        reply = http(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert reply.status == 200
        assert b"# HELP mifumo_carrier_submissions_total" in reply.body
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{settings.MIFUMO_METRICS_PORT}/other")
    finally:
        metrics.stop_worker_metrics()
