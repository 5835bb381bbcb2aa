"""The production environment of .env.example passes `check --deploy`, and the laptop
defaults (DEBUG on) stay plain HTTP."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from tests.helpers import assert_envelope
from tests.ops.stack import ROOT, Stack

SETTINGS_PROBE = """
import json
from django.conf import settings
print(json.dumps({name: getattr(settings, name, None) for name in (
    "DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "LOG_FORMAT",
    "MIFUMO_WEBHOOK_ALLOW_PRIVATE", "MIFUMO_METRICS_TOKEN", "MIFUMO_TRUST_PROXY", "MIDDLEWARE")}))
"""


def production(tmp_path: Path, **extra: str) -> tuple[Stack, dict[str, str]]:
    """The web service's environment from .env.example, with its var folder here."""
    stack = Stack(
        overrides={
            "MIFUMO_VAR_DIR": str(tmp_path / "var"),
            "STATIC_ROOT": str(tmp_path / "static"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            **extra,
        }
    )
    return stack, stack.environment("web")


def run_in_container(stack: Stack, tmp_path: Path, *argv: str, **extra: str):
    """`docker compose run --rm web ARGV...`: through the entrypoint, as given."""
    entrypoint = stack.command("web")[0]
    return subprocess.run(
        ["sh", entrypoint, *argv],
        cwd=ROOT,
        env=stack.environment("web", **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def probe(stack: Stack, tmp_path: Path, **extra: str) -> dict:
    result = run_in_container(
        stack, tmp_path, "python", "manage.py", "shell", "-c", SETTINGS_PROBE, **extra
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_check_deploy_finds_no_security_warning_in_the_production_environment(tmp_path):
    stack, _ = production(tmp_path)
    security = run_in_container(
        stack,
        tmp_path,
        *[
            "python",
            "manage.py",
            "check",
            "--deploy",
            "--tag",
            "security",
            "--fail-level",
            "WARNING",
        ],
    )
    assert security.returncode == 0, security.stdout + security.stderr
    assert "System check identified no issues" in security.stdout
    everything = run_in_container(
        stack, tmp_path, "python", "manage.py", "check", "--deploy", "--fail-level", "WARNING"
    )
    assert everything.returncode == 0, everything.stdout + everything.stderr
    assert "System check identified no issues" in everything.stdout


@pytest.mark.slow
def test_production_settings_are_https_only_and_laptop_safe_defaults_are_off(tmp_path):
    stack, env = production(tmp_path)
    values = probe(stack, tmp_path)
    assert values["DEBUG"] is False
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31_536_000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_HSTS_PRELOAD"] is True
    # The proxy's X-Forwarded-Proto counts, from a trusted peer only (mifumo.proxy): never by
    # Django's SECURE_PROXY_SSL_HEADER, which would take it from anyone.
    assert values["MIFUMO_TRUST_PROXY"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] is None
    assert values["MIDDLEWARE"][0] == "mifumo.proxy.ForwardedProtoMiddleware"
    assert values["ALLOWED_HOSTS"] == env["ALLOWED_HOSTS"].split(",")
    assert values["CSRF_TRUSTED_ORIGINS"] == env["CSRF_TRUSTED_ORIGINS"].split(",")
    assert values["LOG_FORMAT"] == "json"
    assert values["MIFUMO_WEBHOOK_ALLOW_PRIVATE"] is False
    # One switch serves plain HTTP (trying the stack on localhost) ...
    plain = probe(stack, tmp_path, MIFUMO_HTTPS="false", MIFUMO_TRUST_PROXY="false")
    assert plain["SECURE_SSL_REDIRECT"] is False
    assert plain["SESSION_COOKIE_SECURE"] is False and plain["SECURE_HSTS_SECONDS"] == 0
    assert plain["SECURE_PROXY_SSL_HEADER"] is None
    # ... and each setting can still be set on its own.
    mixed = probe(stack, tmp_path, SECURE_HSTS_SECONDS="60", SECURE_HSTS_PRELOAD="false")
    assert mixed["SECURE_HSTS_SECONDS"] == 60 and mixed["SECURE_HSTS_PRELOAD"] is False


@pytest.mark.slow
def test_a_generated_secret_key_is_kept_and_shared_by_every_start(tmp_path):
    stack, _ = production(tmp_path)
    read_key = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = run_in_container(stack, tmp_path, "python", "manage.py", "shell", "-c", read_key)
    second = run_in_container(stack, tmp_path, "python", "manage.py", "shell", "-c", read_key)
    assert first.returncode == 0, first.stderr[-2000:]
    key = first.stdout.strip().splitlines()[-1]
    assert len(key) >= 50 and second.stdout.strip().splitlines()[-1] == key
    key_file = tmp_path / "var" / "secret_key"
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # `docker compose exec` does not pass through the entrypoint; the settings find it too.
    direct = subprocess.run(
        ["python", "manage.py", "shell", "-c", read_key],
        cwd=ROOT,
        env=stack.environment("web"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert direct.stdout.strip().splitlines()[-1] == key, direct.stderr[-2000:]
    # An operator's own key wins.
    mine = "k" * 20 + "-operator-chosen-secret-key-0123456789abcdefgh"
    own = run_in_container(
        stack, tmp_path, "python", "manage.py", "shell", "-c", read_key, SECRET_KEY=mine
    )
    assert own.stdout.strip().splitlines()[-1] == mine


def test_a_service_gives_up_when_the_database_never_answers(tmp_path):
    stack, _ = production(tmp_path)
    result = run_in_container(
        stack,
        tmp_path,
        "python",
        "docker/wait_for_services.py",
        DATABASE_URL="postgres://mifumo:x@127.0.0.1:1/mifumo",
        REDIS_URL="",
        SERVICES_WAIT_SECONDS="2",
    )
    assert result.returncode == 1
    assert "database unreachable" in result.stderr


def test_laptop_defaults_keep_plain_http(client, db):
    # pytest-django turns DEBUG off while testing; the settings were made with it on.
    assert settings.MIFUMO_HTTPS is False
    assert settings.SECURE_SSL_REDIRECT is False
    assert settings.SESSION_COOKIE_SECURE is False and settings.CSRF_COOKIE_SECURE is False
    assert settings.SECURE_HSTS_SECONDS == 0
    response = client.get("/api/integration/v1/sms/balance/")
    assert_envelope(response, 401, "INVALID_CREDENTIALS")
    assert "Strict-Transport-Security" not in response
    assert client.get("/healthz").status_code == 200
