"""SSRF safety: refused at save time and again at send time, against the address connected."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from mifumo.errors import DomainError
from sms.models import Recipient
from tests.helpers import assert_envelope
from tests.webhooks.conftest import change_status, make_message
from webhooks import security
from webhooks.delivery import delivery_attempt
from webhooks.endpoints import endpoint_create
from webhooks.models import Delivery
from webhooks.security import validate_webhook_url
from webhooks.transport import VettedTransport

PUBLIC = "93.184.215.14"


@pytest.fixture
def production(settings):
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = False


@pytest.fixture
def dns(monkeypatch):
    """A resolver under the test's control: name -> addresses."""
    table: dict[str, list[str]] = {}
    real = security.resolve_host

    def resolve(host: str, port: int):
        if host in table:
            return [ipaddress.ip_address(a) for a in table[host]]
        return real(host, port)

    monkeypatch.setattr(security, "resolve_host", resolve)
    return table


def refusal(url: str) -> str:
    with pytest.raises(DomainError) as caught:
        validate_webhook_url(url)
    error = caught.value
    assert error.code == "VALIDATION_ERROR"
    assert list(error.details) == ["webhook_url"]
    return str(error.details["webhook_url"][0])


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://127.1.2.3:8080/hook", "loopback"),
        ("http://10.0.0.5/hook", "private"),
        ("http://172.16.3.4/hook", "private"),
        ("http://192.168.1.10/hook", "private"),
        ("http://100.64.0.1/hook", "not a public address"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://169.254.10.10/", "link-local"),
        ("http://100.100.100.200/", "metadata"),
        ("http://192.0.0.192/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://0.0.0.0:8001/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "private"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::]/hook", "unspecified"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[fd12:3456::1]/hook", "private"),
        ("http://[fec0::1]:8080/hook", "site-local"),
        ("http://[ff02::1]/hook", "multicast"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback address inside an IPv6 address"),
        ("http://[::ffff:169.254.169.254]/hook", "metadata"),
        ("http://[::ffff:10.1.2.3]/hook", "private address inside an IPv6"),
        ("http://[64:ff9b::7f00:1]/hook", "loopback address inside an IPv6"),
        ("http://[2002:7f00:1::]/hook", "loopback address inside an IPv6"),
        ("http://localhost:8001/hook", "loopback"),
        ("http://LOCALHOST./hook", "loopback"),
        ("http://2130706433/hook", "loopback"),
        ("http://0x7f.1/hook", "loopback"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ],
)
def test_internal_destinations_are_refused_at_save_time(url, reason):
    assert reason in refusal(url)


@pytest.mark.usefixtures("production")
def test_a_refused_address_reads_as_a_sentence():
    assert refusal("http://169.254.169.254/latest/meta-data/") == (
        "169.254.169.254 is a cloud metadata address"
    )
    assert refusal("http://[::1]/hook") == "::1 is a loopback address"


@pytest.mark.usefixtures("production")
def test_a_name_resolving_to_an_internal_address_is_refused(dns):
    dns["hooks.example.com"] = ["127.0.0.1"]
    dns["mixed.example.com"] = [PUBLIC, "10.0.0.1"]
    assert "hooks.example.com resolves to 127.0.0.1, a loopback address" in refusal(
        "https://hooks.example.com/in"
    )
    assert "10.0.0.1" in refusal("https://mixed.example.com/in")


@pytest.mark.usefixtures("production")
def test_public_destinations_are_accepted_and_normalised(dns):
    dns["hooks.example.com"] = [PUBLIC]
    assert validate_webhook_url("HTTPS://Hooks.Example.COM/In?a=1#frag") == (
        "https://hooks.example.com/In?a=1"
    )
    assert validate_webhook_url(f"http://{PUBLIC}:8080") == f"http://{PUBLIC}:8080/"
    assert validate_webhook_url("https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/x") == (
        "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/x"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/a\r\nX-Injected: 1", "control characters"),
        ("http://example.com/a\nb", "control characters"),
        ("http://example.com/\x00", "control characters"),
        ("http://example.com/\u200bhidden", "control characters"),
        ("http://exa mple.com/", "spaces"),
        (" http://example.com/", "spaces"),
        ("http://example.com/\t", "spaces"),
        ("ftp://example.com/", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("gopher://127.0.0.1:6379/_INFO", "only http and https"),
        ("http://user:pass@example.com/", "credentials"),
        ("http://user@example.com/", "credentials"),
        ("http://example.com\\@127.0.0.1/", "backslash"),
        ("http:///nohost", "no host"),
        ("http://example.com:0/", "port 0"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://exa$mple.com/", "host name is not valid"),
        ("http://" + "a" * 2000 + ".com/", "longer than 2000"),
        ("", "required"),
    ],
)
def test_malformed_urls_are_refused_even_when_private_targets_are_allowed(url, reason):
    assert reason in refusal(url)


def test_private_targets_are_allowed_when_configured(settings):
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    assert validate_webhook_url("http://127.0.0.1:8001/hook") == "http://127.0.0.1:8001/hook"
    assert validate_webhook_url("http://receiver:8080/in") == "http://receiver:8080/in"


@pytest.mark.django_db
@pytest.mark.usefixtures("production")
def test_the_endpoint_api_refuses_internal_urls(api):
    body = assert_envelope(
        api.post("webhooks/", {"url": "http://169.254.169.254/latest/"}), 400, "VALIDATION_ERROR"
    )
    assert "metadata" in body["details"]["url"][0]
    body = assert_envelope(
        api.post("webhooks/", {"url": "http://localhost/x"}), 400, "VALIDATION_ERROR"
    )
    assert "loopback" in body["details"]["url"][0]


# --- at send time ---------------------------------------------------------------------------


def _delivery_to(account, url: str) -> Delivery:
    change_status(make_message(account, webhook_url=url), Recipient.Status.SENT)
    return Delivery.objects.get()


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
def test_internal_targets_saved_earlier_are_refused_at_send_time(alice, receiver, settings, host):
    # Saved while private targets were allowed, sent after the policy was tightened.
    delivery = _delivery_to(alice, receiver.url_for("/hook", host=host))
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = False

    attempt = delivery_attempt(delivery_id=delivery.pk)

    assert attempt is not None
    assert attempt.error.startswith("Refused: ")
    assert "loopback" in attempt.error
    assert attempt.status_code is None
    assert receiver.requests == []


@pytest.mark.django_db
def test_dns_rebinding_after_the_save_check_is_refused(alice, receiver, settings, dns):
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = False
    dns["rebind.example.com"] = [PUBLIC]
    url = validate_webhook_url(f"http://rebind.example.com:{receiver.port}/hook")
    delivery = _delivery_to(alice, url)
    # The name now answers with the loopback address, where the receiver listens.
    dns["rebind.example.com"] = ["127.0.0.1"]

    attempt = delivery_attempt(delivery_id=delivery.pk)

    assert attempt is not None
    assert "rebind.example.com resolves to 127.0.0.1, a loopback address" in attempt.error
    assert receiver.requests == []


@pytest.mark.django_db
def test_the_request_goes_to_the_vetted_address_with_the_host_name_kept(alice, receiver, dns):
    # The name is unknown to the system resolver: only a connection to the address that was
    # checked can reach the receiver.
    dns["hooks.mifumo.test"] = ["127.0.0.1"]
    delivery = _delivery_to(alice, f"http://hooks.mifumo.test:{receiver.port}/hook")

    attempt = delivery_attempt(delivery_id=delivery.pk)

    assert attempt is not None and attempt.succeeded, attempt.error if attempt else None
    assert receiver.requests[0].header("Host") == f"hooks.mifumo.test:{receiver.port}"


@pytest.mark.django_db
def test_header_injection_saved_by_other_means_is_refused_at_send_time(alice, receiver):
    delivery = _delivery_to(alice, receiver.url)
    Delivery.objects.filter(pk=delivery.pk).update(url=receiver.url + "\r\nX-Injected: 1")
    attempt = delivery_attempt(delivery_id=delivery.pk)
    assert attempt is not None
    assert "control characters" in attempt.error
    assert receiver.requests == []


@pytest.mark.django_db
def test_an_endpoint_url_saved_under_production_settings_is_rechecked(alice, settings, dns):
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = False
    dns["flip.example.com"] = [PUBLIC]
    endpoint = endpoint_create(account=alice, url="http://flip.example.com/hook")
    dns["flip.example.com"] = ["169.254.169.254"]
    change_status(make_message(alice), Recipient.Status.SENT)

    attempt = delivery_attempt(delivery_id=Delivery.objects.get(endpoint=endpoint).pk)

    assert attempt is not None
    assert "cloud metadata address" in attempt.error


class _Capture(httpx.BaseTransport):
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200)


def test_https_is_pinned_to_the_address_with_sni_and_host_kept(monkeypatch, dns, settings):
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = False
    dns["hooks.example.com"] = [PUBLIC]
    capture = _Capture()
    transport = VettedTransport()
    monkeypatch.setattr(transport, "_pool", lambda origin: capture)

    with httpx.Client(transport=transport) as client:
        client.post("https://hooks.example.com/in?x=1", content=b"{}")

    [sent] = capture.requests
    assert str(sent.url) == f"https://{PUBLIC}/in?x=1"
    assert sent.headers["Host"] == "hooks.example.com"
    assert sent.extensions["sni_hostname"] == "hooks.example.com"


def test_the_transport_refuses_before_connecting(monkeypatch, dns, settings):
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = False
    dns["inside.example.com"] = ["10.1.2.3"]
    capture = _Capture()
    transport = VettedTransport()
    monkeypatch.setattr(transport, "_pool", lambda origin: capture)

    with httpx.Client(transport=transport) as client, pytest.raises(security.UnsafeDestination):
        client.post("https://inside.example.com/in", content=b"{}")
    assert capture.requests == []
