"""Logs: one JSON object per line with the request id; failed Celery tasks with context."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from celery.signals import task_failure
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from integration.members import invitation_create, membership_add
from integration.models import Account
from mifumo.celery import app as celery_app
from mifumo.logging import JsonFormatter, RequestIdFilter, SecretPathFilter, summarize_args
from tests.helpers import assert_envelope
from tests.ops.stack import ROOT

PREFIX = "/api/integration/v1/"
DASH = "/api/integration/dashboard/"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the console handler of LOG_FORMAT=json would print, formatted as records are
    made (inside the request, as in production)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(SecretPathFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def parsed(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_is_one_json_object_with_extras_and_the_exception():
    record = logging.LogRecord("mifumo.x", logging.ERROR, __file__, 1, "a %s b", ("€",), None)
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record.exc_info = sys.exc_info()
    record.carrier = "smpp"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "ERROR" and data["logger"] == "mifumo.x"
    assert data["message"] == "a € b"
    assert data["time"].endswith("Z") and "T" in data["time"]
    assert data["request_id"] is None
    assert data["carrier"] == "smpp"
    assert "ValueError: bad" in data["exception"]


@pytest.mark.django_db
def test_the_access_line_carries_the_request_id(api, json_lines):
    response = api.get("sms/balance/", HTTP_X_REQUEST_ID="req-0123456789")
    assert response["X-Request-ID"] == "req-0123456789"
    access = [line for line in parsed(json_lines) if line["logger"] == "mifumo.access"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "req-0123456789"
    assert line["method"] == "GET" and line["status"] == 200
    assert line["path"] == f"{PREFIX}sms/balance/"
    assert line["route"] == f"{PREFIX}sms/balance/"
    assert line["duration_ms"] >= 0 and line["client"] == "127.0.0.1"


@pytest.mark.django_db
def test_probes_are_not_logged_unless_they_fail(client, json_lines):
    assert client.get("/healthz").status_code == 200
    assert [line for line in parsed(json_lines) if line["logger"] == "mifumo.access"] == []


@pytest.mark.django_db
@pytest.mark.urls("tests.integration.boom_urls")
def test_an_unhandled_error_logs_the_id_the_client_got(api, json_lines):
    response = api.get(f"{PREFIX}test/boom/")
    body = assert_envelope(response, 500, "INTERNAL_ERROR")
    request_id = response["X-Request-ID"]
    assert body["details"]["request_id"] == request_id
    errors = [line for line in parsed(json_lines) if line["level"] == "ERROR"]
    assert errors, json_lines.getvalue()
    # The API's own record, and Django's 5xx record written after the middleware finished.
    assert {line["logger"] for line in errors} >= {"mifumo.api", "django.request"}
    for line in errors:
        assert line["request_id"] == request_id, line
    assert any("RuntimeError: secret internals" in line.get("exception", "") for line in errors)


@pytest.mark.django_db
def test_query_strings_stay_out_of_the_logs(client, json_lines):
    response = client.get("/api/integration/carriers/nowhere/dlr/?token=dlr-secret-123")
    assert response.status_code == 404
    assert "dlr-secret-123" not in json_lines.getvalue()
    assert any(line["status"] == 404 for line in parsed(json_lines) if "status" in line)


@pytest.mark.django_db
def test_the_tokens_of_mailed_links_stay_out_of_the_logs(
    alice: Account, json_lines: io.StringIO, settings
) -> None:
    """A password-reset link and an invitation link hold their one-time token in the path:
    whoever reads the logs must not be able to follow them."""
    settings.MIFUMO_ACCESS_LOG = "all"
    user = get_user_model().objects.create_user("asha", "asha@example.com", "x" * 12)
    membership_add(user=user, account=alice, role="owner")
    _, invitation_token = invitation_create(
        account=alice, email="neema@example.com", role="owner", invited_by=user
    )
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    reset_token = default_token_generator.make_token(user)
    reset = f"{DASH}password/reset/{uid}/{reset_token}/"
    invitation = f"{DASH}invite/{invitation_token}/"
    client = Client(enforce_csrf_checks=True)
    assert client.get(invitation).status_code == 200
    assert client.get(invitation.rstrip("/")).status_code == 301
    assert client.get(f"{invitation}more/").status_code == 404
    assert client.post(invitation).status_code == 403  # no CSRF token: Django logs it too
    assert client.get(reset).status_code == 302
    assert client.get(f"{DASH}password/reset/sent/").status_code == 200

    logged = json_lines.getvalue()
    assert invitation_token not in logged and reset_token not in logged
    lines = parsed(json_lines)
    access = [(line["path"], line["message"]) for line in lines if "path" in line]
    assert [path for path, _ in access] == [
        f"{DASH}invite/[token]/",
        f"{DASH}invite/[token]",
        f"{DASH}invite/[token]/",
        f"{DASH}invite/[token]/",
        f"{DASH}password/reset/{uid}/[token]/",
        f"{DASH}password/reset/sent/",
    ]
    assert all(f" {path} " in message for path, message in access)
    [refused] = [line for line in lines if line["logger"] == "django.security.csrf"]
    assert refused["message"].endswith(f": {DASH}invite/[token]/")


@pytest.mark.django_db
@pytest.mark.urls("tests.integration.boom_urls")
def test_the_plain_format_shows_the_request_id_too(api):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.addFilter(RequestIdFilter())
    logging.getLogger("mifumo.api").addHandler(handler)
    try:
        response = api.get(f"{PREFIX}test/boom/")
    finally:
        logging.getLogger("mifumo.api").removeHandler(handler)
    assert f"[{response['X-Request-ID']}]" in stream.getvalue()


@celery_app.task(name="tests.ops.always_fails")
def always_fails(recipients: list[str], note: str = "") -> None:
    raise RuntimeError("carrier said no")


def test_a_failed_task_is_logged_with_its_name_id_and_arguments(json_lines):
    failures: list[str] = []

    def seen(sender=None, task_id=None, **kwargs):
        failures.append(task_id)

    task_failure.connect(seen, weak=False, dispatch_uid="tests.ops.seen")
    try:
        result = always_fails.apply(
            args=(["+255712345678"] * 5000,), kwargs={"note": "x" * 1000}, throw=False
        )
    finally:
        task_failure.disconnect(seen, dispatch_uid="tests.ops.seen")  # type: ignore[attr-defined]
    assert failures == [result.id]
    lines = [line for line in parsed(json_lines) if line["logger"] == "mifumo.tasks"]
    assert len(lines) == 1
    line = lines[0]
    assert line["level"] == "ERROR"
    assert line["task_name"] == "tests.ops.always_fails" and line["task_id"] == result.id
    assert line["exception_type"] == "RuntimeError"
    assert "RuntimeError: carrier said no" in line["exception"]
    assert "+255712345678" in line["task_args"] and len(line["task_args"]) < 400
    assert line["task_args"] == summarize_args((["+255712345678"] * 5000,), {"note": "x" * 1000})


def test_a_production_process_logs_json_by_default(tmp_path):
    script = (
        "import logging; logging.getLogger('mifumo.check').warning('ready %s', 1, "
        "extra={'queue': 'dispatch'})"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DEBUG": "false",
        "SECRET_KEY": "s" * 60,
        "MIFUMO_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "mifumo.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines and lines[-1]["message"] == "ready 1"
    assert lines[-1]["queue"] == "dispatch" and lines[-1]["level"] == "WARNING"
    assert [line for line in result.stderr.splitlines() if not line.startswith("{")] == []


def test_json_logs_can_be_asked_for_plain(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "DEBUG": "false",
        "LOG_FORMAT": "plain",
        "SECRET_KEY": "s" * 60,
        "MIFUMO_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "import logging; logging.getLogger('mifumo.check').warning('plain please')",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "WARNING mifumo.check [-] plain please" in result.stderr
    bad = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**env, "LOG_FORMAT": "xml"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "LOG_FORMAT must be json or plain" in bad.stderr


@pytest.mark.django_db
def test_the_quiet_access_log_keeps_sends_and_failures_only(api, anon, json_lines, settings):
    settings.MIFUMO_ACCESS_LOG = "sends"
    assert api.get("sms/balance/").status_code == 200
    assert api.post("sms/send/", {"message": "Habari", "recipients": ["0712345678"]}).status_code
    assert anon.get("sms/balance/").status_code == 401
    assert api.post("sms/send/", {"recipients": []}).status_code == 400
    access = [
        (line["method"], line["path"], line["status"])
        for line in parsed(json_lines)
        if line["logger"] == "mifumo.access"
    ]
    assert access == [
        ("POST", f"{PREFIX}sms/send/", 200),
        ("GET", f"{PREFIX}sms/balance/", 401),
        ("POST", f"{PREFIX}sms/send/", 400),
    ]
    # One line per failure: Django does not repeat the 4xx.
    assert [line for line in parsed(json_lines) if line["logger"] == "django.request"] == []


@pytest.mark.parametrize(
    ("value", "mode"),
    [("true", "all"), ("1", "all"), ("sends", "sends"), ("SENDS", "sends"), ("false", "none")],
)
def test_the_access_log_setting_reads_true_sends_or_false(value, mode, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.MIFUMO_ACCESS_LOG)",
        ],
        cwd=ROOT,
        env={**os.environ, "MIFUMO_ACCESS_LOG": value, "MIFUMO_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == mode


def test_an_unknown_access_log_setting_is_refused(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "MIFUMO_ACCESS_LOG": "loud", "MIFUMO_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "MIFUMO_ACCESS_LOG must be true, sends or false, not 'loud'" in result.stderr
