"""The cost of the parts a one-recipient send is made of, each alone: the floor under any
send path built from them on this machine.

    .venv/bin/python -m bench.parts [--calls 20000] [--seconds 10]

In this process, the CPU time (user + system) the caller spends per call on: a Redis round
trip on a raw socket and through redis-py (``GET``, and ``EVALSHA`` of a one-line script),
a prepared one-row ``SELECT`` through psycopg, a phone number parsed and checked as the send
checks it (phonenumbers: valid, mobile), JSON decoded and encoded, a ULID. Then a bare WSGI
application (``bare_app``: a constant JSON answer) under granian with the shipped shape (2
processes × 4 threads), driven by wrk at 32 connections: requests per second and the
server's CPU per request, from ``/proc``. Redis db 6 and PostgreSQL's ``postgres`` database
are used; nothing is written but one Redis key.
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT, free_port, gauged, start, stop, wait_for_port, wrk
from bench.jasmin_bench import CpuMeter, Proc, cmdline

BODY = b'{"success":true,"message":"ok","data":null,"error":null}'
KEY = "mifumo:bench:parts"


def bare_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A WSGI application that answers every request with the same JSON."""
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]
    )
    return [BODY]


def per_call_us(work: Callable[[], object], calls: int) -> float:
    """The process's CPU time per call of ``work``, in µs, after a warm-up."""
    for _ in range(min(calls, 500)):
        work()
    started = time.process_time()
    for _ in range(calls):
        work()
    return (time.process_time() - started) / calls * 1e6


def in_place(calls: int, redis_db: int) -> list[tuple[str, float]]:
    import phonenumbers
    import psycopg
    import redis
    from ulid import ULID

    client = redis.Redis(host="127.0.0.1", port=6379, db=redis_db)
    client.set(KEY, "1")
    script = str(client.script_load("return redis.call('GET', KEYS[1])"))
    raw = socket.create_connection(("127.0.0.1", 6379))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    select = f"*2\r\n$6\r\nSELECT\r\n${len(str(redis_db))}\r\n{redis_db}\r\n".encode()
    raw.sendall(select)
    raw.recv(64)
    get = f"*2\r\n$3\r\nGET\r\n${len(KEY)}\r\n{KEY}\r\n".encode()

    def raw_get() -> None:
        raw.sendall(get)
        if not raw.recv(64):
            raise SystemExit("Redis closed the connection")

    database = psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True)
    cursor = database.cursor()

    def select_one() -> None:
        cursor.execute("SELECT %s::int", (1,), prepare=True)
        cursor.fetchone()

    def phone() -> None:
        number = phonenumbers.parse("0712345678", "TZ")
        if not phonenumbers.is_valid_number(number):
            raise SystemExit("the sample number is not valid")
        phonenumbers.number_type(number)
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    body = '{"message": "Habari 1", "recipients": ["+255712345678"]}'
    try:
        return [
            ("Redis GET, raw socket", per_call_us(raw_get, calls)),
            ("Redis GET, redis-py", per_call_us(lambda: client.get(KEY), calls)),
            ("Redis EVALSHA, redis-py", per_call_us(lambda: client.evalsha(script, 1, KEY), calls)),
            ("PostgreSQL prepared SELECT, psycopg", per_call_us(select_one, calls)),
            ("phone number parsed and checked", per_call_us(phone, calls)),
            ("JSON decoded and encoded", per_call_us(lambda: json.dumps(json.loads(body)), calls)),
            ("ULID", per_call_us(lambda: str(ULID()), calls)),
        ]
    finally:
        client.delete(KEY)
        raw.close()
        database.close()


def bare_server(seconds: int) -> tuple[float, float]:
    """Requests per second and the server's CPU ms per request of ``bare_app`` under
    granian (2 × 4), wrk at 32 connections."""
    port = free_port()
    granian = str(Path(PYTHON).parent / "granian")
    command = [
        granian,
        *("--interface", "wsgi", "--workers", "2", "--blocking-threads", "4"),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        "bench.parts:bare_app",
    ]
    logs = ROOT / "var" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / "parts-granian.log"
    server = start(command, None, log, append=False)

    def classify(proc: Proc) -> str | None:
        # granian's workers are forked: they share the launcher's command line.
        line = cmdline(proc.pid)
        return "server" if f"--port {port} " in line and "bench.parts:bare_app" in line else None

    try:
        wait_for_port(port, server, log, "granian")
        url = f"http://127.0.0.1:{port}/"
        wrk(url, connections=32, seconds=2)
        meter = CpuMeter(classify)
        meter.start()
        figures = wrk(url, connections=32, seconds=seconds)
        used = meter.stop().get("server", 0.0)
    finally:
        stop(server)
    rate = figures["rps"]
    return rate, used / (rate * seconds) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--redis-db", type=int, default=6)
    args = parser.parse_args()
    with gauged():
        for name, us in in_place(args.calls, args.redis_db):
            print(f"{name:40s} {us:7.1f} µs of the caller's CPU per call", flush=True)
        rate, ms = bare_server(args.seconds)
        print(
            f"{'bare WSGI application under granian':40s} {ms * 1000:7.1f} µs of the server's CPU "
            f"per request ({rate:,.0f} requests/s, wrk at 32 connections)"
        )


if __name__ == "__main__":
    main()
