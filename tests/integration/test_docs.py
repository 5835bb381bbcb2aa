"""The OpenAPI schema, the interactive docs (offline), the front door and health checks."""

import socket
import threading
import time

import pytest
import yaml
from django.test import Client

PREFIX = "/api/integration/v1/"
GUIDE_PATHS = [
    "sms/send/",
    "sms/status/{message_id}/",
    "sms/delivery-reports/",
    "sms/balance/",
    "contacts/create/",
    "contacts/search/",
    "contacts/segments/create/",
]


@pytest.fixture
def schema():
    response = Client().get(f"{PREFIX}schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


@pytest.mark.django_db
def test_schema_documents_every_guide_route_with_the_bearer_scheme(schema):
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for path in GUIDE_PATHS:
        assert f"{PREFIX}{path}" in paths, path
    scheme = schema["components"]["securitySchemes"]["BearerApiKey"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}


@pytest.mark.django_db
def test_every_operation_lists_its_error_codes_with_examples(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            errors = {code: r for code, r in responses.items() if code.startswith(("4", "5"))}
            assert "401" in errors, (method, path)
            for code, response in errors.items():
                examples = response["content"]["application/json"]["examples"]
                assert examples, (method, path, code)
                for example in examples.values():
                    assert set(example["value"]) == {
                        "success",
                        "message",
                        "data",
                        "error_code",
                        "details",
                    }


@pytest.mark.django_db
def test_send_documents_its_request_example_and_every_send_error(schema):
    send = schema["paths"][f"{PREFIX}sms/send/"]["post"]
    assert send["requestBody"]["content"]["application/json"]

    def codes(status):
        examples = send["responses"][status]["content"]["application/json"]["examples"]
        return {example["value"]["error_code"] for example in examples.values()}

    bad_request = codes("400")
    for code in (
        "INVALID_PHONE",
        "MESSAGE_TOO_LONG",
        "INVALID_SENDER_ID",
        "INVALID_SCHEDULE_TIME",
        "TOO_MANY_RECIPIENTS",
        "VALIDATION_ERROR",
    ):
        assert code in bad_request
    assert codes("402") == {"INSUFFICIENT_BALANCE"}


@pytest.mark.django_db
def test_documentation_page_uses_local_static_files_only():
    response = Client().get("/api/integration/documentation/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html.lower()
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    assert "/static/drf_spectacular_sidecar/" in html
    static = Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert static.status_code == 200


def test_front_door_links_to_docs_and_dashboard():
    html = Client().get("/").content.decode()
    assert "/api/integration/documentation/" in html
    assert "/api/integration/dashboard/" in html


def test_healthz_is_up():
    assert Client().get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_and_broker():
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_when_the_broker_is_unreachable(settings):
    from mifumo.celery import app

    original = app.conf.broker_url
    app.conf.update(CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    try:
        response = Client().get("/readyz")
    finally:
        app.conf.update(CELERY_BROKER_URL=original)
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["broker"] != "ok"


@pytest.mark.django_db
def test_readyz_answers_by_its_deadline_while_the_broker_stalls(settings):
    """A broker that takes the connection and never answers: each probe answers 503 at its
    deadline, and the probes made during the stall share one round of checks."""
    from mifumo.celery import app

    settings.MIFUMO_READY_TIMEOUT_SECONDS = 1
    silent = socket.create_server(("127.0.0.1", 0))
    original = app.conf.broker_url
    app.conf.update(CELERY_BROKER_URL=f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
    try:
        for _ in range(3):
            started = time.monotonic()
            response = Client().get("/readyz")
            assert time.monotonic() - started < 2.5
            assert response.status_code == 503
            assert response.json()["checks"] == {"database": "ok", "broker": "timed out"}
        rounds = [t for t in threading.enumerate() if t.name == "readyz"]
        assert len(rounds) == 1
    finally:
        app.conf.update(CELERY_BROKER_URL=original)
        silent.close()
    rounds[0].join(30)
    assert not rounds[0].is_alive()


@pytest.mark.django_db
def test_schema_generates_and_validates_without_a_single_warning(tmp_path):
    from django.core.management import call_command

    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml")
    )
    assert (tmp_path / "schema.yml").stat().st_size > 10_000
