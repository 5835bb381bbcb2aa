"""Shared pieces of the benchmarks: a fresh PostgreSQL database, a gunicorn server, wrk."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_dev_run(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """``python3 dev.py run`` in a process group of its own, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "dev.py", "run", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


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


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def fresh_database(name: str) -> None:
    for sql in (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", sql], check=True)


def setup_account(env: dict[str, str], name: str = "bench") -> str:
    """Migrate, create an account with room for any benchmark, return an admin key."""
    manage(env, "migrate", "--noinput")
    manage(env, "create_account", name, "--balance", "900000000")
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
    )
    return manage(env, "create_api_key", name, "--permissions", "admin").strip().splitlines()[-1]


@contextmanager
def gunicorn(env: dict[str, str], workers: int = 4, threads: int = 1) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "mifumo.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
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
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)


def wrk(
    url: str,
    *,
    connections: int,
    seconds: int,
    script: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """requests/s and latency percentiles (ms) from wrk, plus non-2xx counts."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        args += ["-s", str(script)]
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
