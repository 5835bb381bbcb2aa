"""Every response under the API prefix is the five-key envelope, whatever happens."""

import pytest
from django.test import Client

from tests.helpers import ENVELOPE_KEYS, assert_envelope

PREFIX = "/api/integration/v1/"


@pytest.mark.django_db
def test_malformed_json_is_400(api):
    response = api.client.post(
        f"{PREFIX}sms/send/", data="{not json", content_type="application/json"
    )
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert "Malformed JSON" in body["message"]


@pytest.mark.django_db
def test_unauthenticated_is_401(anon):
    assert_envelope(anon.get("sms/balance/"), 401, "INVALID_CREDENTIALS")


@pytest.mark.django_db
def test_forbidden_is_403(alice, api_for):
    assert_envelope(api_for(alice, "read").get("keys/"), 403, "PERMISSION_DENIED")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["nope/", "nope", "sms/status/msg_unknown/", "sms/"])
def test_unknown_route_or_id_is_404(api, path):
    assert_envelope(api.get(path), 404, "NOT_FOUND")


@pytest.mark.django_db
def test_wrong_method_is_405(api):
    assert_envelope(api.delete("sms/balance/"), 405, "METHOD_NOT_ALLOWED")
    assert_envelope(api.get("sms/send/"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.django_db
def test_body_over_the_limit_is_413(api, settings):
    settings.MIFUMO_MAX_BODY_BYTES = 1000
    response = api.client.post(
        f"{PREFIX}sms/send/",
        data='{"message": "' + "a" * 2000 + '"}',
        content_type="application/json",
    )
    body = assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")
    assert body["details"]["limit"] == 1000


@pytest.mark.django_db
def test_wrong_content_type_is_415(api):
    response = api.client.post(f"{PREFIX}sms/send/", data="message=hi", content_type="text/plain")
    assert_envelope(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    form = api.client.post(f"{PREFIX}sms/send/", data={"message": "hi"})
    assert_envelope(form, 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.django_db
@pytest.mark.parametrize("accept", ["text/html", "application/xml", "text/plain; q=1"])
def test_an_accept_the_api_cannot_meet_is_answered_in_json(api, alice, accept):
    balance = assert_envelope(api.get("sms/balance/", HTTP_ACCEPT=accept), 200)
    assert balance["data"]["balance"] == 5000
    body = {"message": "Habari", "recipients": ["+255712345678"]}
    assert_envelope(api.post("sms/send/", body, HTTP_ACCEPT=accept), 200)
    alice.refresh_from_db()
    assert alice.balance == 4990


@pytest.mark.django_db
def test_rate_limited_is_429(api, alice):
    alice.api_per_hour = 1
    alice.save()
    assert_envelope(api.get("sms/balance/"), 200)
    assert_envelope(api.get("sms/balance/"), 429, "RATE_LIMIT_EXCEEDED")


@pytest.mark.django_db
@pytest.mark.urls("tests.integration.boom_urls")
def test_unhandled_error_is_500_with_a_request_id_and_no_internals(api, caplog):
    response = api.get(f"{PREFIX}test/boom/")
    body = assert_envelope(response, 500, "INTERNAL_ERROR")
    assert body["details"]["request_id"] == response["X-Request-ID"]
    assert "secret internals" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert any(response["X-Request-ID"] in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
@pytest.mark.urls("tests.integration.boom_urls")
def test_error_outside_drf_is_still_an_envelope(api):
    client = Client(raise_request_exception=False)
    response = client.get(f"{PREFIX}test/plain/")
    assert_envelope(response, 500, "INTERNAL_ERROR")


@pytest.mark.django_db
@pytest.mark.urls("tests.integration.boom_urls")
def test_database_unreachable_is_503(api):
    response = api.get(f"{PREFIX}test/db-down/")
    assert_envelope(response, 503, "SERVICE_UNAVAILABLE")
    assert response["Retry-After"]


@pytest.mark.django_db
def test_every_response_carries_rate_limit_headers(api, anon):
    for response in (api.get("sms/balance/"), anon.get("sms/balance/"), api.get("nope/")):
        assert set(response.json()) == ENVELOPE_KEYS
        for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
            assert header in response, (response.status_code, header)


@pytest.mark.django_db
def test_an_incoming_request_id_is_echoed(api):
    response = api.get("sms/balance/", HTTP_X_REQUEST_ID="client-req-12345")
    assert response["X-Request-ID"] == "client-req-12345"
    hostile = api.get("sms/balance/", HTTP_X_REQUEST_ID="bad id\r\nSet-Cookie: x")
    assert hostile["X-Request-ID"] != "bad id\r\nSet-Cookie: x"


@pytest.mark.django_db
def test_the_contacts_import_has_its_own_larger_limit(api, settings):
    settings.MIFUMO_MAX_BODY_BYTES = 1000
    settings.MIFUMO_MAX_IMPORT_BODY_BYTES = 5000
    csv = "name,phone_number\n" + "Asha,0712345678\n" * 100  # about 1,700 bytes
    response = api.client.post(f"{PREFIX}contacts/import/", data=csv, content_type="text/csv")
    assert response.status_code == 200, response.content
    too_big = api.client.post(f"{PREFIX}contacts/import/", data=csv * 4, content_type="text/csv")
    body = assert_envelope(too_big, 413, "PAYLOAD_TOO_LARGE")
    assert body["details"]["limit"] == 5000


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "methods"),
    [("sms/balance/", {"GET", "HEAD", "OPTIONS"}), ("sms/send/", {"POST", "OPTIONS"})],
)
def test_options_names_the_methods_in_the_envelope(api, path, methods):
    body = assert_envelope(api.client.options(f"{PREFIX}{path}"), 200)
    assert set(body["data"]["methods"]) == methods
    assert set(api.client.options(f"{PREFIX}{path}")["Allow"].split(", ")) == methods


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["xml", "csv", "json", "api"])
def test_a_format_parameter_is_a_parameter_like_any_other(api, fmt):
    body = assert_envelope(api.get("sms/balance/", {"format": fmt}), 200)
    assert body["data"]["currency"] == "TZS"
    sent = api.post(f"sms/send/?format={fmt}", {"message": "hi", "recipients": ["0712345678"]})
    assert assert_envelope(sent, 200)["data"]["recipients"] == ["+255712345678"]


@pytest.mark.django_db
@pytest.mark.parametrize("redirect", [True, False])
def test_a_host_this_server_does_not_answer_to_is_400_in_the_envelope(settings, caplog, redirect):
    """Refused before any view (by the HTTPS redirect's look at the host, or later): under
    the API prefix the envelope, elsewhere Django's page; the access line records it, and no
    traceback is logged for it."""
    settings.ALLOWED_HOSTS = ["sms.example.com"]
    settings.SECURE_SSL_REDIRECT = redirect
    client = Client(HTTP_HOST="198.51.100.7")
    body = assert_envelope(client.get("/api/integration/v1/sms/balance/"), 400, "VALIDATION_ERROR")
    assert body["details"] == {"host": ["not in ALLOWED_HOSTS"]}
    page = client.get("/api/integration/dashboard/login/")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")
    assert not [r for r in caplog.records if r.name.startswith("django.security")]
