import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from integration import ratelimit
from integration.models import Account
from tests.helpers import Api, assert_envelope
from tests.workers import service_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_limit_reached_answers_429_with_headers_and_details(api, alice, settings):
    settings.MIFUMO_RATE_LIMITS = {**settings.MIFUMO_RATE_LIMITS, "api": (3, 3600)}
    remaining = [api.get("sms/balance/")["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    response = api.get("sms/balance/")
    body = assert_envelope(response, 429, "RATE_LIMIT_EXCEEDED")
    assert body["details"]["limit"] == 3 and body["details"]["window"] == 3600
    assert int(response["Retry-After"]) >= 1
    assert body["details"]["retry_after"] == int(response["Retry-After"])
    assert response["X-RateLimit-Limit"] == "3" and response["X-RateLimit-Remaining"] == "0"


@pytest.mark.django_db
def test_window_reset_lets_requests_through_again(api, alice, settings):
    settings.MIFUMO_RATE_LIMITS = {**settings.MIFUMO_RATE_LIMITS, "api": (1, 1)}
    assert_envelope(api.get("sms/balance/"), 200)
    deadline = time.monotonic() + 5
    while api.get("sms/balance/").status_code == 200 and time.monotonic() < deadline:
        pass  # the one-second window may just have turned; find the limit first
    assert_envelope(api.get("sms/balance/"), 429, "RATE_LIMIT_EXCEEDED")
    time.sleep(1.1)
    assert_envelope(api.get("sms/balance/"), 200)


@pytest.mark.django_db
def test_per_account_override_beats_the_default(api, alice, bob, api_for, settings):
    settings.MIFUMO_RATE_LIMITS = {**settings.MIFUMO_RATE_LIMITS, "api": (2, 3600)}
    Account.objects.filter(pk=alice.pk).update(api_per_hour=5)
    for _ in range(5):
        assert_envelope(api.get("sms/balance/"), 200)
    assert_envelope(api.get("sms/balance/"), 429, "RATE_LIMIT_EXCEEDED")
    bob_api = api_for(bob)
    for _ in range(2):
        assert_envelope(bob_api.get("sms/balance/"), 200)
    assert_envelope(bob_api.get("sms/balance/"), 429, "RATE_LIMIT_EXCEEDED")


@pytest.mark.django_db
def test_send_bucket_counts_only_sends(api, alice):
    alice.sms_per_minute = 1
    alice.save()
    payload = {"message": "hi", "recipients": ["+255712345678"]}
    assert_envelope(api.post("sms/send/", payload), 200)
    body = assert_envelope(api.post("sms/send/", payload), 429, "RATE_LIMIT_EXCEEDED")
    assert body["details"]["bucket"] == "sms_send" and body["details"]["window"] == 60
    assert_envelope(api.get("sms/balance/"), 200)


@pytest.mark.django_db
def test_failed_authentication_is_limited_per_address(anon, settings):
    settings.MIFUMO_RATE_ANONYMOUS = (3, 60)
    for _ in range(3):
        assert_envelope(anon.get("sms/balance/"), 401, "INVALID_CREDENTIALS")
    assert_envelope(anon.get("sms/balance/"), 429, "RATE_LIMIT_EXCEEDED")


@pytest.mark.django_db
def test_limits_fail_open_when_the_cache_is_down(api, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(ratelimit, "count_mark_and_read", broken)
    response = api.get("sms/balance/")
    assert_envelope(response, 200)
    assert "X-RateLimit-Limit" not in response


CHILD = """
import json, os, sys
import django
django.setup()
from rest_framework.test import APIClient
client = APIClient()
client.credentials(HTTP_AUTHORIZATION="Bearer " + os.environ["KEY"])
url = "/api/integration/v1/sms/balance/"
codes = [client.get(url).status_code for _ in range(int(sys.argv[1]))]
print(json.dumps(codes))
"""


@pytest.mark.django_db(transaction=True)
def test_two_processes_share_the_counter_through_redis(alice, alice_key):
    Account.objects.filter(pk=alice.pk).update(api_per_hour=10)
    env = service_env(KEY=alice_key.raw)
    procs = [
        subprocess.run(
            [sys.executable, "-c", CHILD, "7"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        for _ in range(2)
    ]
    codes = [c for p in procs for c in json.loads(p.stdout.strip().splitlines()[-1])]
    assert (codes.count(200), codes.count(429)) == (10, 4), codes
    assert os.environ["REDIS_URL"]


@pytest.mark.django_db
def test_a_request_is_counted_once_in_each_of_its_buckets(api, alice):
    alice.sms_per_minute = 5
    alice.api_per_hour = 7
    alice.save()
    payload = {"message": "hi", "recipients": ["+255712345678"]}
    first = api.post("sms/send/", payload)
    assert_envelope(first, 200)
    # The send bucket has less headroom (4 of 5 left) than "api" (6 of 7), so it is shown.
    assert (first["X-RateLimit-Limit"], first["X-RateLimit-Remaining"]) == ("5", "4")
    balance = api.get("sms/balance/")
    assert (balance["X-RateLimit-Limit"], balance["X-RateLimit-Remaining"]) == ("7", "5")


@pytest.mark.django_db
def test_a_refused_permission_counts_only_in_the_api_bucket(alice, make_key, settings):
    settings.MIFUMO_RATE_LIMITS = {**settings.MIFUMO_RATE_LIMITS, "sms_send": (1, 60)}
    reader = Api(make_key(alice, permission="read").raw)
    writer = Api(make_key(alice, permission="write").raw)
    payload = {"message": "hi", "recipients": ["+255712345678"]}
    for _ in range(3):
        assert_envelope(reader.post("sms/send/", payload), 403, "PERMISSION_DENIED")
    assert_envelope(writer.post("sms/send/", payload), 200)
    assert_envelope(writer.post("sms/send/", payload), 429, "RATE_LIMIT_EXCEEDED")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("{", "application/json", 400, "VALIDATION_ERROR"),
        ("message=hi", "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (
            '{"message": "a\\u0000b", "recipients": ["+255712345678"]}',
            "application/json",
            400,
            "VALIDATION_ERROR",
        ),
    ],
)
def test_a_body_that_could_not_be_sent_counts_only_in_the_api_bucket(
    api, alice, settings, body, content_type, status, code
):
    settings.MIFUMO_RATE_LIMITS = {**settings.MIFUMO_RATE_LIMITS, "sms_send": (1, 60)}
    for _ in range(3):
        response = api.client.post(
            "/api/integration/v1/sms/send/", data=body, content_type=content_type
        )
        assert_envelope(response, status, code)
    payload = {"message": "hi", "recipients": ["+255712345678"]}
    sent = api.post("sms/send/", payload)
    assert_envelope(sent, 200)
    assert sent["X-RateLimit-Remaining"] == "0"
    assert_envelope(api.post("sms/send/", payload), 429, "RATE_LIMIT_EXCEEDED")
