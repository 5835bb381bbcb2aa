"""Shared pieces of the benchmarks: a fresh PostgreSQL database, the processes of the stack
(the web server, Celery, ``dev.py run``) started and stopped, wrk."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def gauge_ms() -> float:
    """The machine's speed as this run found it: milliseconds a loop of three million Python
    additions takes (lower is faster). The CPU figures of one code move with it (on this
    machine it has ranged from about 140 to 500 ms), so a bench prints it before and after
    its run, and figures are compared only between runs of similar gauges."""
    # At a module's top level, as ``python3 -c`` runs it: the figures in bench/README.md were
    # taken that way, and names there are dictionary lookups, slower than a function's locals.
    loop = compile(
        "total = 0\nfor number in range(3_000_000):\n    total += number\n", "gauge", "exec"
    )
    start = time.perf_counter()
    exec(loop, {})  # noqa: S102 - a constant loop
    return (time.perf_counter() - start) * 1000


@contextmanager
def gauged() -> Iterator[None]:
    """Print the gauge (``gauge_ms``) before and after the block."""
    print(f"gauge before: {gauge_ms():.0f} ms (3,000,000 Python additions)", flush=True)
    try:
        yield
    finally:
        print(f"gauge after: {gauge_ms():.0f} ms", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The Celery queues a worker of the whole stack serves.
QUEUES = "dispatch,receipts,webhooks,default"


def start(
    command: list[str],
    env: dict[str, str] | None,
    log: Path,
    *,
    append: bool = True,
    cwd: Path | None = ROOT,
) -> subprocess.Popen[bytes]:
    """``command`` in a process group of its own (``stop`` ends the group), its output
    appended to ``log`` or, with ``append=False``, written over it."""
    with log.open("ab" if append else "wb") as out:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(*processes: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM to the process group of each of ``processes``, then wait for them; a group
    still there after ``timeout`` seconds gets SIGKILL."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, name: str) -> None:
    """Wait until something listens on ``port``; fail with the end of ``log`` if ``process``
    ends first or a minute passes."""
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.2)


def start_dev_run(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """``python3 dev.py run`` in a process group of its own, its output appended to ``log``."""
    return start([PYTHON, "dev.py", "run", "--port", str(port)], env, log)


def celery(*args: str) -> list[str]:
    """The command of ``celery`` for the project's app, with ``args``."""
    return [PYTHON, "-m", "celery", "-A", "mifumo", *args]


def celery_worker(
    *options: str, loglevel: str = "WARNING", concurrency: int = 2, queues: str = QUEUES
) -> list[str]:
    """The command of a Celery worker, with further ``options``."""
    return celery(
        "worker",
        "--loglevel",
        loglevel,
        "--concurrency",
        str(concurrency),
        "--queues",
        queues,
        *options,
    )


def celery_beat(schedule: Path) -> list[str]:
    """The command of Celery beat, its schedule kept in ``schedule``."""
    return celery("beat", "--loglevel", "WARNING", "--schedule", str(schedule))


def psql(database: str, sql: str) -> list[list[str]]:
    """Run ``sql`` in ``database``: the rows of its last result, each a list of its values."""
    connect = ["-h", "127.0.0.1", "-U", "postgres", "-d", database]
    out = subprocess.run(
        ["psql", *connect, "-q", "-At", "-F", "|", "-c", sql],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    return [line.split("|") for line in out.splitlines() if line]


def bench_env(database: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
    env.update(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{database}",
        DEBUG="false",
        SECRET_KEY="bench-secret-key-not-for-production-0123456789",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        # Plain HTTP on loopback: no redirect to HTTPS.
        MIFUMO_HTTPS="false",
        MIFUMO_ACCESS_LOG="false",
        MIFUMO_VAR_DIR=str(ROOT / "var" / "bench"),
        DJANGO_SETTINGS_MODULE="mifumo.settings",
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, root: Path = ROOT) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def fresh_database(name: str) -> None:
    for sql in (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"):
        psql("postgres", sql)


def setup_account(env: dict[str, str], name: str = "bench", root: Path = ROOT) -> str:
    """Migrate, create an account with room for any benchmark, return an admin key (with the
    code of the checkout at ``root``)."""
    manage(env, "migrate", "--noinput", root=root)
    manage(env, "create_account", name, "--balance", "900000000", root=root)
    manage(
        env,
        "set_account_limits",
        name,
        "--sms-per-minute",
        "10000000",
        "--api-per-hour",
        "100000000",
        "--contacts-per-hour",
        "100000000",
        root=root,
    )
    key = manage(env, "create_api_key", name, "--permissions", "admin", root=root)
    return key.strip().splitlines()[-1]


def fresh_account(
    database: str, redis_db: int, root: Path = ROOT, **extra: str
) -> tuple[dict[str, str], str]:
    """A fresh database and Redis database number with the bench account (made by the code
    of the checkout at ``root``): the environment to run the stack in (``extra`` added to it)
    and the account's admin key."""
    fresh_database(database)
    env = bench_env(database, REDIS_URL=f"redis://127.0.0.1:6379/{redis_db}", **extra)
    subprocess.run(["redis-cli", "-n", str(redis_db), "flushdb"], check=True, capture_output=True)
    return env, setup_account(env, root=root)


@contextmanager
def web_server(
    env: dict[str, str], workers: int = 2, threads: int = 4, root: Path = ROOT
) -> Iterator[str]:
    """The web service as the container runs it (``python -m mifumo.web``, granian), with the
    code of the checkout at ``root``."""
    port = free_port()
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "mifumo.web",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
        ],
        cwd=root,
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.2)
    try:
        yield base
    finally:
        stop(process, timeout=20)


def wrk(
    url: str,
    *,
    connections: int,
    seconds: int,
    script: Path | None = None,
    env: dict[str, str] | None = None,
    headers: Sequence[str] = (),
) -> dict[str, float]:
    """requests/s and latency percentiles (ms) from wrk, plus non-2xx counts."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        args += ["-s", str(script)]
    for header in headers:
        args += ["-H", header]
    out = subprocess.run(
        [*args, url], capture_output=True, text=True, check=True, env=env or dict(os.environ)
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    figures: dict[str, float] = {"rps": float(rps[1])}
    for pct in ("50", "75", "90", "99"):
        match = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        if match:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]
            figures[f"p{pct}"] = float(match[1]) * scale
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    figures["non_2xx"] = float(errors[1]) if errors else 0.0
    return figures


def call(base: str, path: str, key: str, body: Any = None) -> tuple[int, Any, float]:
    request = urllib.request.Request(
        f"{base}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            payload = json.loads(response.read())
            status = response.status
    except urllib.error.HTTPError as exc:
        payload = json.loads(exc.read())
        status = exc.code
    return status, payload, (time.perf_counter() - started) * 1000


def timed_gets(base: str, path: str, key: str, samples: int) -> tuple[list[float], Any]:
    """``samples`` GETs of ``path``, each expected to answer 200: their times (ms) and the
    last payload."""
    times = []
    payload: Any = None
    for _ in range(samples):
        status, payload, ms = call(base, path, key)
        assert status == 200, payload
        times.append(ms)
    return times, payload


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]
