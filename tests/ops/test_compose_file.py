"""docker-compose.yml, the Dockerfile and the entrypoint name only things that exist."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands
from django.urls import resolve

from mifumo import web as web_module
from mifumo.metrics import queue_names
from tests.ops.stack import ROOT, Stack, interpolate, load_compose, local_path, read_dockerfile

APP_SERVICES = ["migrate", "web", "worker-dispatch", "worker-receipts", "worker-webhooks", "beat"]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"


@pytest.fixture(scope="module")
def compose():
    return load_compose()


@pytest.fixture(scope="module")
def stack():
    return Stack(overrides={})


def entrypoint_modes() -> dict[str, str]:
    """The entrypoint's case arms: mode -> its body."""
    text = ENTRYPOINT.read_text()
    block = text[text.index('case "$command" in') : text.index("esac")]
    arms = re.findall(r"^  ([a-z*|-]+)\)\n(.*?);;", block, flags=re.M | re.S)
    return dict(arms)


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_the_compose_file_has_every_service(compose):
    services = compose["services"]
    assert set(APP_SERVICES) | {"postgres", "redis", "smpp"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["smpp"]["profiles"] == ["smpp"]
    for name in [*APP_SERVICES, "smpp"]:
        service = services[name]
        assert service["build"] == ".", name
        assert service["image"] == services["web"]["image"], name
        assert service["env_file"] == ".env", name
        assert "profiles" not in service or name == "smpp", name
    for volume in (v.split(":")[0] for s in services.values() for v in s.get("volumes", [])):
        assert volume in compose["volumes"], volume


def test_every_service_waits_for_what_it_needs(compose):
    services = compose["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in [*APP_SERVICES[1:], "smpp"]:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
    # And the entrypoint waits itself, for a database that is not a compose service.
    modes = entrypoint_modes()
    for mode in ("migrate", "web", "worker", "beat"):
        assert "wait_for_services" in modes[mode], mode


def test_the_image_runs_the_entrypoint_as_a_non_root_user():
    image = read_dockerfile()
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, flags=re.M)) >= 2, "multi-stage"
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS runtime", text, flags=re.M)
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.1[12]-slim", text, flags=re.M)
    assert image.user and image.user not in ("root", "0")
    assert Path(local_path(image.entrypoint[0])) == ENTRYPOINT
    assert image.cmd == ["web"]
    assert image.env["DEBUG"] == "false"
    assert any("manage.py collectstatic --noinput" in run for run in image.runs)
    # Static files outside the var volume, so that a new image brings its own.
    assert not image.env["STATIC_ROOT"].startswith(image.env["MIFUMO_VAR_DIR"])
    assert image.healthcheck == ["python", "docker/healthcheck.py"]


def test_the_entrypoint_is_valid_posix_shell():
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)


def test_service_commands_name_existing_entrypoint_modes_and_commands(stack):
    modes = entrypoint_modes()
    commands = get_commands()
    for name in [*APP_SERVICES, "smpp"]:
        argv = stack.command(name)
        assert Path(argv[0]) == ENTRYPOINT
        mode = argv[1]
        if mode in modes:
            continue
        # Anything else runs as given: it must be a management command that exists.
        assert argv[1:3] == ["python", "manage.py"], (name, argv)
        assert argv[3] in commands, (name, argv[3])
    for command in re.findall(r"manage\.py (\w+)", ENTRYPOINT.read_text()):
        assert command in commands, command
    bootstrap = (ROOT / "docker" / "bootstrap.py").read_text()
    for command in re.findall(r'call_command\(\s*"(\w+)"', bootstrap):
        assert command in commands, command


def test_the_web_service_runs_the_wsgi_application_under_granian(compose):
    web = entrypoint_modes()["web"]
    assert 'exec python -m mifumo.web "$@"' in web
    assert web_module.TARGET == "mifumo.wsgi:application"
    assert (ROOT / "mifumo" / "wsgi.py").exists()
    # Connections queued for a worker being replaced move to the others (granian's advice).
    assert compose["services"]["web"]["sysctls"] == {"net.ipv4.tcp_migrate_req": 1}


def test_workers_consume_every_queue_of_the_celery_app(stack):
    modes = entrypoint_modes()
    assert "celery -A mifumo worker" in modes["worker"]
    assert "celery -A mifumo beat" in modes["beat"]
    consumed: set[str] = set()
    nodes = set()
    for name in ("worker-dispatch", "worker-receipts", "worker-webhooks"):
        argv = stack.command(name)
        assert argv[1] == "worker"
        queues = option(argv, "--queues").split(",")
        assert set(queues) <= set(queue_names()), (name, queues)
        assert not consumed & set(queues), f"{name} shares a queue"
        consumed.update(queues)
        assert int(option(argv, "--concurrency")) >= 1
        node = option(argv, "--hostname").split("@")[0]
        assert stack.service(name)["environment"]["CELERY_NODE"] == node
        nodes.add(node)
    assert consumed == set(queue_names()) == {"dispatch", "receipts", "webhooks", "default"}
    assert len(nodes) == 3
    beats = [n for n in stack.compose["services"] if "beat" in stack.command(n)[1:2]]
    assert beats == ["beat"]


def test_healthchecks_probe_real_endpoints_and_nodes(compose, stack):
    assert resolve("/healthz").url_name == "healthz"
    assert resolve("/readyz").url_name == "readyz"
    healthcheck = (ROOT / "docker" / "healthcheck.py").read_text()
    assert "/healthz" in healthcheck
    assert r"^healthz$" in settings.SECURE_REDIRECT_EXEMPT
    services = compose["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in ("worker-dispatch", "worker-receipts", "worker-webhooks"):
        test = " ".join(services[name]["healthcheck"]["test"])
        assert "/app/docker/entrypoint.sh celery -A mifumo inspect ping" in test
        # $$ is compose's escape: the container's shell expands the node name.
        assert interpolate(test, {}).count("${CELERY_NODE}@${HOSTNAME}") == 1
    for name in ("migrate", "beat", "smpp"):
        assert services[name]["healthcheck"] == {"disable": True}
    # The published port is the one the web server listens on.
    image = read_dockerfile()
    assert services["web"]["ports"] == ["127.0.0.1:${MIFUMO_PORT:-8001}:" + image.env["PORT"]]


@pytest.mark.parametrize("port", [None, "9443"])
def test_the_web_port_is_published_on_the_hosts_loopback_only(compose, port):
    """Only a proxy on the host (or in the compose network) reaches the web server: nobody
    can go past it to set the forwarded headers. Compose's short syntax, HOST_IP:HOST:CONTAINER."""
    image = read_dockerfile()
    variables = {} if port is None else {"MIFUMO_PORT": port}
    (published,) = [interpolate(entry, variables) for entry in compose["services"]["web"]["ports"]]
    host_ip, host_port, container_port = published.rsplit(":", 2)
    assert host_ip == "127.0.0.1"
    assert host_port == (port or "8001")
    assert container_port == image.env["PORT"]
    # No other service is published.
    assert [name for name, s in compose["services"].items() if "ports" in s] == ["web"]


def dockerignore_includes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    included = True
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.rstrip("/")
        if pattern.startswith("**/"):
            matched = any(
                fnmatch.fnmatchcase(prefix.split("/")[-1], pattern[3:]) for prefix in prefixes
            )
        else:
            matched = any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes)
        if matched:
            included = negate
    return included


def test_the_build_context_holds_what_runs_and_nothing_else():
    local_apps = [app for app in settings.INSTALLED_APPS if (ROOT / app).is_dir()]
    assert "dashboard" in local_apps
    for path in [
        "manage.py",
        "pyproject.toml",
        "README.md",
        "templates/home.html",
        "dashboard/static/dashboard/dashboard.css",
        "docker/entrypoint.sh",
        *[f"{app}/apps.py" for app in local_apps],
    ]:
        assert dockerignore_includes(path), path
    for path in [
        "tests/conftest.py",
        "bench/README.md",
        ".venv/bin/python",
        "var/postgres/PG_VERSION",
        ".git/HEAD",
        ".env",
        "sms/__pycache__/models.cpython-311.pyc",
        "docker-compose.yml",
    ]:
        assert not dockerignore_includes(path), path
