"""Behind a trusted proxy the client is the address that proxy added (the right-most entry of
X-Forwarded-For, or MIFUMO_TRUSTED_PROXY_COUNT entries from the right), never an entry the
client wrote itself: throttles, the activity log and the access log all use it. The proxy is
trusted only on connections from MIFUMO_TRUSTED_PROXIES: a client that reaches the port
directly is taken at its own address and scheme, whatever forwarded headers it writes."""

from __future__ import annotations

import ipaddress
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
DIRECT = "203.0.113.50"  # a client that reached the port past the proxy
LOGIN = "/api/integration/dashboard/login/"


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


def unknown_key(client: APIClient, forwarded: str) -> Any:
    """The balance asked for with a key nobody has (counted by the anonymous limit), the
    request saying it was forwarded for ``forwarded``."""
    return client.get(
        f"{django_settings.MIFUMO_API_PREFIX}sms/balance/",
        HTTP_AUTHORIZATION=f"Bearer {keys.generate(test=False)}",
        HTTP_X_FORWARDED_FOR=forwarded,
    )


@pytest.mark.django_db
def test_rotating_the_forwarded_header_does_not_reset_the_anonymous_limit(
    behind_proxy: Any, alice: Account
) -> None:
    limit, _window = django_settings.MIFUMO_RATE_ANONYMOUS
    client = APIClient(REMOTE_ADDR=PROXY)
    for n in range(limit):
        response = unknown_key(client, f"203.0.113.{n % 250}, 198.51.100.7")
        assert_envelope(response, 401, "INVALID_CREDENTIALS")
    response = unknown_key(client, "192.0.2.1, 198.51.100.7")
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


# --- a peer outside MIFUMO_TRUSTED_PROXIES -----------------------------------------------------


@pytest.mark.parametrize(
    "peer",
    [
        "127.0.0.1",
        "10.0.0.2",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.4",
        "::1",
        "fd12:3456::5",
        "::ffff:10.0.0.2",  # a dual-stack socket's IPv4 peer
    ],
)
def test_the_header_counts_from_loopback_and_private_networks_by_default(
    behind_proxy: Any, peer: str
) -> None:
    assert _address("1.2.3.4, 198.51.100.7", remote=peer) == "198.51.100.7"


@pytest.mark.parametrize(
    "peer",
    [DIRECT, "172.32.0.1", "192.169.0.1", "11.0.0.1", "2001:db8::1", "::ffff:203.0.113.50"],
)
def test_the_header_is_ignored_from_any_other_peer(behind_proxy: Any, peer: str) -> None:
    assert _address("198.51.100.7", remote=peer) == peer
    assert _address("1.2.3.4, 198.51.100.7", remote=peer) == peer


def test_a_peer_that_is_no_address_is_not_a_proxy(behind_proxy: Any) -> None:
    assert _address("198.51.100.7", remote="unix:/run/mifumo.sock") == "unix:/run/mifumo.sock"


def test_the_trusted_networks_are_those_configured(behind_proxy: Any) -> None:
    behind_proxy.MIFUMO_TRUSTED_PROXIES = (
        ipaddress.ip_network("198.18.0.0/15"),
        ipaddress.ip_network("2001:db8:1::7"),
    )
    assert _address("198.51.100.7", remote="198.19.4.5") == "198.51.100.7"
    assert _address("198.51.100.7", remote="2001:db8:1::7") == "198.51.100.7"
    # Private networks are not trusted unless listed.
    assert _address("198.51.100.7", remote=PROXY) == PROXY
    assert _address("198.51.100.7", remote="2001:db8:1::8") == "2001:db8:1::8"
    behind_proxy.MIFUMO_TRUSTED_PROXIES = ()
    assert _address("198.51.100.7", remote="127.0.0.1") == "127.0.0.1"


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        (
            {},
            [
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "fc00::/7",
            ],
        ),
        (
            {"MIFUMO_TRUSTED_PROXIES": " 192.0.2.10, 2001:db8::/48 ,"},
            ["192.0.2.10/32", "2001:db8::/48"],
        ),
        ({"MIFUMO_TRUSTED_PROXIES": ""}, []),
    ],
)
def test_the_trusted_networks_are_read_from_the_environment(
    environment: dict[str, str], expected: list[str]
) -> None:
    script = "print(*settings.MIFUMO_TRUSTED_PROXIES)"
    out = _settings(script, MIFUMO_TRUST_PROXY="true", **environment)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1:] == ([" ".join(expected)] if expected else [])


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "10.0.0.1/8", "proxy.internal", "10.0.0.0/8/1"])
def test_a_malformed_trusted_network_stops_the_start(entry: str) -> None:
    out = _settings(
        "print(settings.MIFUMO_TRUSTED_PROXIES)",
        MIFUMO_TRUSTED_PROXIES=f"127.0.0.1/32,{entry}",
    )
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: MIFUMO_TRUSTED_PROXIES")
    assert repr(entry) in last


def _settings(script: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """``script`` run where ``settings`` are the project's, read from ``environment``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIFUMO_TRUST")}
    env.update(DJANGO_SETTINGS_MODULE="mifumo.settings", **environment)
    return subprocess.run(
        [sys.executable, "-c", f"from django.conf import settings; {script}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.mark.django_db
def test_a_client_past_the_proxy_cannot_reset_the_login_throttle(
    behind_proxy: Any, alice: Account
) -> None:
    user = get_user_model().objects.create_user(username="asha", password=PASSWORD)
    membership_add(user=user, account=alice, role="owner")
    client = Client(REMOTE_ADDR=DIRECT)
    answers = []
    for n in range(12):
        response = client.post(
            LOGIN, {"username": "asha", "password": "wrong"}, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}"
        )
        answers.append(response.status_code)
    assert answers[:4] == [200] * 4 and set(answers[4:]) == {429}
    response = client.post(
        LOGIN, {"username": "asha", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="192.0.2.99"
    )
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    # Nor can it pass for a client of the proxy: that one signs in, and is logged at its own.
    assert (
        Client(REMOTE_ADDR=PROXY)
        .post(
            LOGIN, {"username": "asha", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="198.51.100.3"
        )
        .status_code
        == 302
    )
    # A client past the proxy is logged at its own address, not the one it wrote.
    other = Client(REMOTE_ADDR="203.0.113.51").post(
        LOGIN, {"username": "asha", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="198.51.100.9"
    )
    assert other.status_code == 302
    logins = AuditEvent.objects.filter(action="login").order_by("pk")
    assert [event.ip for event in logins] == ["198.51.100.3", "203.0.113.51"]


@pytest.mark.django_db
def test_a_client_past_the_proxy_cannot_reset_the_anonymous_limit(
    behind_proxy: Any, alice: Account
) -> None:
    limit, _window = django_settings.MIFUMO_RATE_ANONYMOUS
    client = APIClient(REMOTE_ADDR=DIRECT)
    for n in range(limit):
        response = unknown_key(client, f"198.51.100.{n % 250}")
        assert_envelope(response, 401, "INVALID_CREDENTIALS")
    response = unknown_key(client, "192.0.2.1")
    assert_envelope(response, 429, "RATE_LIMIT_EXCEEDED")
    # The address it wrote is not the one blocked.
    response = unknown_key(APIClient(REMOTE_ADDR=PROXY), "192.0.2.1")
    assert_envelope(response, 401, "INVALID_CREDENTIALS")


@pytest.mark.django_db
def test_the_access_log_records_a_client_past_the_proxy_at_its_own_address(
    behind_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="mifumo.access"):
        Client(REMOTE_ADDR=DIRECT).get("/no-such-page/", HTTP_X_FORWARDED_FOR="6.6.6.6")
        APIClient(REMOTE_ADDR=DIRECT).get(
            f"{django_settings.MIFUMO_API_PREFIX}sms/balance/",
            HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7",
        )
    clients = [getattr(r, "client", None) for r in caplog.records if r.name == "mifumo.access"]
    assert clients == [DIRECT, DIRECT]


# --- X-Forwarded-Proto -------------------------------------------------------------------------


@pytest.fixture
def https_only(behind_proxy: Any) -> Any:
    behind_proxy.SECURE_SSL_REDIRECT = True
    behind_proxy.SECURE_HSTS_SECONDS = 3600
    return behind_proxy


@pytest.mark.django_db
def test_a_forwarded_https_counts_from_the_proxy(https_only: Any) -> None:
    response = Client(REMOTE_ADDR=PROXY).get(LOGIN, HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert response["Strict-Transport-Security"].startswith("max-age=3600")
    # Without the header the request is what its connection is: plain HTTP, redirected.
    assert Client(REMOTE_ADDR=PROXY).get(LOGIN).status_code == 301
    # The proxy's word wins over the connection's either way.
    response = Client(REMOTE_ADDR=PROXY).get(LOGIN, secure=True, HTTP_X_FORWARDED_PROTO="http")
    assert response.status_code == 301


@pytest.mark.django_db
@pytest.mark.parametrize("peer", [DIRECT, "2001:db8::1"])
def test_a_forwarded_https_from_a_client_past_the_proxy_is_ignored(
    https_only: Any, peer: str
) -> None:
    response = Client(REMOTE_ADDR=peer).get(LOGIN, HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 301
    assert response["Location"] == f"https://testserver{LOGIN}"
    assert "Strict-Transport-Security" not in response
    # Its connection's own scheme stands: HTTPS it is, whatever it writes.
    response = Client(REMOTE_ADDR=peer).get(LOGIN, secure=True, HTTP_X_FORWARDED_PROTO="http")
    assert response.status_code == 200
    assert response["Strict-Transport-Security"].startswith("max-age=3600")


@pytest.mark.django_db
def test_a_forwarded_https_is_ignored_when_no_proxy_is_trusted(https_only: Any) -> None:
    https_only.MIFUMO_TRUST_PROXY = False
    https_only.MIFUMO_TRUSTED_PROXY_COUNT = 0
    response = Client(REMOTE_ADDR=PROXY).get(LOGIN, HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 301
    assert "Strict-Transport-Security" not in response
