"""Behind a trusted proxy the client is the address that proxy added (the right-most entry of
X-Forwarded-For, or MIFUMO_TRUSTED_PROXY_COUNT entries from the right), never an entry the
client wrote itself: throttles, the activity log and the access log all use it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from integration import keys
from integration.members import membership_add
from integration.models import Account, AuditEvent
from mifumo.client_ip import client_address
from tests.helpers import assert_envelope

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple 7"
PROXY = "10.0.0.2"  # the trusted proxy: the WSGI peer


@pytest.fixture
def behind_proxy(settings: Any) -> Any:
    settings.MIFUMO_TRUST_PROXY = True
    settings.MIFUMO_TRUSTED_PROXY_COUNT = 1
    return settings


def _address(forwarded: str | None, remote: str = PROXY) -> str:
    request = RequestFactory().get("/", REMOTE_ADDR=remote)
    if forwarded is not None:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_address(request)


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (1, "198.51.100.7", "198.51.100.7"),
        # The client wrote the left entries; the proxy appended the address it saw.
        (1, "1.2.3.4, 198.51.100.7", "198.51.100.7"),
        (1, "1.2.3.4,5.6.7.8 ,198.51.100.7", "198.51.100.7"),
        (2, "1.2.3.4, 198.51.100.7, 10.0.0.9", "198.51.100.7"),
        # Fewer entries than trusted proxies: the header is not trusted.
        (2, "198.51.100.7", PROXY),
        (1, "", PROXY),
        (1, None, PROXY),
        # What the proxy added must be an address.
        (1, "1.2.3.4, not-an-address", PROXY),
        (1, "1.2.3.4, 198.51.100.7:4711", "198.51.100.7"),
        (1, "[2001:db8::1]:4711", "2001:db8::1"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_the_client_is_what_the_trusted_proxies_added(
    behind_proxy: Any, hops: int, forwarded: str | None, expected: str
) -> None:
    behind_proxy.MIFUMO_TRUSTED_PROXY_COUNT = hops
    assert _address(forwarded) == expected


def test_without_a_trusted_proxy_the_header_is_ignored(settings: Any) -> None:
    settings.MIFUMO_TRUST_PROXY = False
    settings.MIFUMO_TRUSTED_PROXY_COUNT = 0
    assert _address("1.2.3.4, 198.51.100.7") == PROXY


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"MIFUMO_TRUST_PROXY": "true"}, 1),
        ({"MIFUMO_TRUST_PROXY": "true", "MIFUMO_TRUSTED_PROXY_COUNT": "2"}, 2),
        ({"MIFUMO_TRUST_PROXY": "false", "MIFUMO_TRUSTED_PROXY_COUNT": "2"}, 0),
    ],
)
def test_the_proxy_count_defaults_to_one_when_the_proxy_is_trusted(
    environment: dict[str, str], expected: int
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIFUMO_TRUST")}
    env.update(DJANGO_SETTINGS_MODULE="mifumo.settings", **environment)
    script = "from django.conf import settings; print(settings.MIFUMO_TRUSTED_PROXY_COUNT)"
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.django_db
def test_rotating_the_forwarded_header_does_not_reset_the_login_throttle(
    behind_proxy: Any, alice: Account
) -> None:
    user = get_user_model().objects.create_user(username="asha", password=PASSWORD)
    membership_add(user=user, account=alice, role="owner")
    client = Client(REMOTE_ADDR=PROXY)
    answers = []
    for n in range(12):
        response = client.post(
            "/api/integration/dashboard/login/",
            {"username": "asha", "password": "wrong"},
            HTTP_X_FORWARDED_FOR=f"203.0.113.{n}, 198.51.100.7",
        )
        answers.append(response.status_code)
    assert answers[:4] == [200] * 4 and set(answers[4:]) == {429}
    response = client.post(
        "/api/integration/dashboard/login/",
        {"username": "asha", "password": PASSWORD},
        HTTP_X_FORWARDED_FOR="192.0.2.99, 198.51.100.7",
    )
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    # Someone else behind the same proxy is not blocked.
    other = Client(REMOTE_ADDR=PROXY).post(
        "/api/integration/dashboard/login/",
        {"username": "asha", "password": PASSWORD},
        HTTP_X_FORWARDED_FOR="198.51.100.8",
    )
    assert other.status_code == 302
    assert AuditEvent.objects.get(action="login").ip == "198.51.100.8"


@pytest.mark.django_db
def test_rotating_the_forwarded_header_does_not_reset_the_anonymous_limit(
    behind_proxy: Any, alice: Account
) -> None:
    limit, _window = django_settings.MIFUMO_RATE_ANONYMOUS
    client = APIClient(REMOTE_ADDR=PROXY)
    balance = f"{django_settings.MIFUMO_API_PREFIX}sms/balance/"
    for n in range(limit):
        response = client.get(
            balance,
            HTTP_AUTHORIZATION=f"Bearer {keys.generate(test=False)}",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{n % 250}, 198.51.100.7",
        )
        assert_envelope(response, 401, "INVALID_CREDENTIALS")
    response = client.get(
        balance,
        HTTP_AUTHORIZATION=f"Bearer {keys.generate(test=False)}",
        HTTP_X_FORWARDED_FOR="192.0.2.1, 198.51.100.7",
    )
    assert_envelope(response, 429, "RATE_LIMIT_EXCEEDED")


@pytest.mark.django_db
def test_the_access_log_records_the_address_the_proxy_saw(
    behind_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="mifumo.access"):
        Client(REMOTE_ADDR=PROXY).get(
            "/no-such-page/", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7"
        )
        APIClient(REMOTE_ADDR=PROXY).get(
            f"{django_settings.MIFUMO_API_PREFIX}sms/balance/",
            HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7",
        )
    clients = [getattr(r, "client", None) for r in caplog.records if r.name == "mifumo.access"]
    assert clients and set(clients) == {"198.51.100.7"}
