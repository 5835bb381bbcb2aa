""".env.example names every variable the settings and the processes read, and no other."""

from __future__ import annotations

import re

from tests.ops.stack import (
    ROOT,
    commented_env_names,
    load_compose,
    read_dockerfile,
    read_env_file,
)

ENV_EXAMPLE = ROOT / ".env.example"
_SETTINGS_READER = re.compile(
    r"\b(?:env|envstr|envbool|envint|envints|envfloat|envlist|envmoney|envfernet)\(\s*\"([A-Z][A-Z0-9_]*)\""
)
_OS_READER = re.compile(
    r"(?:os\.environ|\benv)(?:\.get|\.setdefault)?[\[(]\s*[\"']([A-Z][A-Z0-9_]*)[\"']"
)
_SHELL_READER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")
# The web server's whole numbers (mifumo/web.py) and the readers of mifumo.env in scripts.
_SCRIPT_READER = re.compile(r"\b(?:whole|envfloat|envint)\(\s*\"([A-Z][A-Z0-9_]*)\"")
# Set by Docker or compose for each container, not by the operator.
_RUNTIME = {"HOSTNAME", "PATH", "CELERY_NODE", "DJANGO_SETTINGS_MODULE"}


def documented() -> set[str]:
    return set(read_env_file(ENV_EXAMPLE)) | commented_env_names(ENV_EXAMPLE)


def settings_names() -> set[str]:
    names = set(_SETTINGS_READER.findall((ROOT / "mifumo" / "settings.py").read_text()))
    names |= set(_OS_READER.findall((ROOT / "mifumo" / "celery.py").read_text()))
    return names


def process_names() -> set[str]:
    names: set[str] = set()
    for script in ("mifumo/web.py", "docker/bootstrap.py", "docker/wait_for_services.py"):
        text = (ROOT / script).read_text()
        names |= set(_OS_READER.findall(text)) | set(_SCRIPT_READER.findall(text))
    names |= set(_SHELL_READER.findall((ROOT / "docker" / "entrypoint.sh").read_text()))
    return {name for name in names if not name.endswith("_FILE")}


def compose_names() -> set[str]:
    text = (ROOT / "docker-compose.yml").read_text().replace("$$", "")
    return set(_SHELL_READER.findall(text))


def test_the_scan_finds_the_settings_variables():
    names = settings_names()
    # Multi-line calls and the Celery schedule are found too.
    assert {"SECRET_KEY", "MIFUMO_WEBHOOK_RETRY_SCHEDULE", "MIFUMO_DUE_SECONDS"} <= names
    assert {"DJANGO_SUPERUSER_PASSWORD", "WEB_WORKERS", "SERVICES_WAIT_SECONDS"} <= (
        process_names()
    )
    assert {"WORKER_DISPATCH_CONCURRENCY", "POSTGRES_PASSWORD"} <= compose_names()


def test_every_variable_the_settings_read_is_in_env_example():
    missing = settings_names() - documented() - _RUNTIME
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_every_variable_of_the_processes_and_compose_is_in_env_example():
    image = set(read_dockerfile().env)
    missing = (process_names() | compose_names()) - documented() - image - _RUNTIME
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_env_example_names_nothing_that_nobody_reads():
    known = settings_names() | process_names() | compose_names() | set(read_dockerfile().env)
    stale = documented() - known
    assert not stale, f"read by nothing: {sorted(stale)}"


def test_env_example_is_the_production_environment():
    values = read_env_file(ENV_EXAMPLE)
    assert values["DEBUG"] == "false"
    assert values["LOG_FORMAT"] == "json"
    assert values["MIFUMO_HTTPS"] == "true"
    assert values["DATABASE_URL"].startswith("postgres://")
    assert "@postgres:5432/" in values["DATABASE_URL"]
    assert values["POSTGRES_PASSWORD"] in values["DATABASE_URL"]
    assert values["REDIS_URL"].startswith("redis://redis:6379/")
    assert values["ALLOWED_HOSTS"] and "*" not in values["ALLOWED_HOSTS"]
    assert values["CSRF_TRUSTED_ORIGINS"].startswith("https://")
    # Empty means "generate one on the first start" (docker/entrypoint.sh).
    assert values["SECRET_KEY"] == ""
    assert values["DJANGO_SUPERUSER_USERNAME"] and values["MIFUMO_FIRST_ACCOUNT"]
    # Set variables are never empty except SECRET_KEY: an empty value is not a default.
    assert [k for k, v in values.items() if v == "" and k != "SECRET_KEY"] == []


def test_compose_interpolates_only_documented_variables_with_safe_defaults():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text, "no default database password"
    services = load_compose()["services"]
    assert "env_file" not in services["postgres"], "the app's secrets stay out of postgres"
