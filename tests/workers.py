"""Real Celery workers (and beat) and the web server as subprocesses against the test database
and Redis.

Use with ``transactional_db`` (or ``live_server``) so the worker sees committed rows.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection

from mifumo.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """A DATABASE_URL for the database the tests are using right now (the test database)."""
    settings = connection.settings_dict
    # A Unix socket's directory is the host, percent-encoded (the embedded server's).
    host = quote(settings.get("HOST") or "127.0.0.1", safe="")
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    user = quote(settings.get("USER") or "postgres", safe="")
    password = f":{quote(settings['PASSWORD'], safe='')}" if settings.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{host}{port}/{settings['NAME']}"


def service_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        DJANGO_SETTINGS_MODULE="mifumo.settings",
        PYTHONUNBUFFERED="1",
        CELERY_TASK_ALWAYS_EAGER="false",
    )
    env.update(extra)
    return env


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.log_path = log
        self._log = log.open("wb")
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not seen from {self.args[:4]}:\n{self.output()[-3000:]}")

    def kill(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()


def celery_command(program: str) -> list[str]:
    """``celery worker`` or ``celery beat`` of this app, logging at INFO (tests wait for its
    "ready." and "beat: Starting" lines)."""
    return [sys.executable, "-m", "celery", "-A", "mifumo", program, "--loglevel", "INFO"]


def _purge_queues() -> None:
    with celery_app.connection_for_write() as conn:
        for queue in ("dispatch", "receipts", "webhooks", "default"):
            try:
                conn.default_channel.queue_purge(queue)  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001, S112 - a queue not declared yet is empty
                continue


@pytest.fixture
def celery_worker_factory(tmp_path: Path, settings: Any) -> Iterator[Callable[..., Process]]:
    """Start real ``celery worker`` subprocesses; they are stopped at the end of the test.

    The workers share the test's database and Redis (the broker).
    """
    started: list[Process] = []
    celery_app.conf.update(CELERY_TASK_ALWAYS_EAGER=False)
    _purge_queues()

    def start(
        queues: str = "dispatch,receipts,webhooks,default",
        concurrency: int = 2,
        name: str | None = None,
        **env: str,
    ) -> Process:
        name = name or f"w{len(started)}"
        args = [
            *celery_command("worker"),
            "--queues",
            queues,
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
        process = Process(args, service_env(**env), tmp_path / f"{name}.log")
        started.append(process)
        process.wait_for("ready.", timeout=60)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.kill()
        # Imported here: the benchmarks import this module before Django is set up.
        from sms.dispatch.wake import wake_flush

        wake_flush()  # a wake still owed goes to the broker, not run in place below
        celery_app.conf.update(CELERY_TASK_ALWAYS_EAGER=True)
        _purge_queues()


def start_beat(tmp_path: Path, **env: str) -> Process:
    """A real ``celery beat`` on the test's database and Redis, its schedule in ``tmp_path``."""
    args = [*celery_command("beat"), "--schedule", str(tmp_path / "beat-schedule")]
    return Process(args, service_env(**env), tmp_path / "beat.log")


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start the web service as production runs it (``python -m mifumo.web``, granian) against
    the test database; returns its base URL. Stopped at the end of the test."""
    started: list[Process] = []

    def start(**env: str) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        args = [sys.executable, "-m", "mifumo.web"]
        shape = {"WEB_WORKERS": "1", "WEB_THREADS": "2"}
        environment = service_env(HOST="127.0.0.1", PORT=str(port), **{**shape, **env})
        process = Process(args, environment, tmp_path / f"web-{port}.log")
        started.append(process)
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            if process.popen.poll() is not None:
                raise AssertionError(f"the web server exited:\n{process.output()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        wait_until(healthy, timeout=60, interval=0.2)
        return base

    try:
        yield start
    finally:
        for process in started:
            process.kill()


@contextmanager
def running(process: Process) -> Iterator[Process]:
    try:
        yield process
    finally:
        process.kill()


def wait_until(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@contextmanager
def broker_down() -> Iterator[None]:
    """The Celery app publishing to a port nobody listens on (its settings are read under the
    CELERY_ namespace of Django's)."""
    conf = celery_app.conf
    saved = {
        key: conf[key]
        for key in (
            "CELERY_BROKER_URL",
            "CELERY_TASK_PUBLISH_RETRY",
            "CELERY_BROKER_CONNECTION_RETRY",
        )
        if key in conf
    }
    conf.update(
        CELERY_BROKER_URL="redis://127.0.0.1:9/0",
        CELERY_TASK_PUBLISH_RETRY=False,
        CELERY_BROKER_CONNECTION_RETRY=False,
    )
    celery_app._pool = None  # type: ignore[attr-defined]
    celery_app.amqp._producer_pool = None  # type: ignore[attr-defined]
    try:
        yield
    finally:
        conf.update(
            {"CELERY_TASK_PUBLISH_RETRY": True, "CELERY_BROKER_CONNECTION_RETRY": True, **saved}
        )
        celery_app._pool = None  # type: ignore[attr-defined]
        celery_app.amqp._producer_pool = None  # type: ignore[attr-defined]
