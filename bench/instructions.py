"""Instructions the web application executes per request, counted by callgrind: a figure that,
unlike CPU time, does not move with the machine's speed, so two commits can be compared run
after run on a machine whose speed drifts.

    .venv/bin/python -m bench.instructions [--requests 100] [--only send,status,...]

Makes a fresh database with the bench account, then 50 single-recipient sends and 50
contacts through the application. Each kind of request (a one-recipient send, a message's
status, a page of 50 delivery reports, a contact search, ``/healthz``) then runs in a process
of its own under ``valgrind --tool=callgrind``, which calls the WSGI application as the web
server does (``mifumo.wsgi``: the fast paths, then Django) in place, with no server and no
socket to a client: 30 requests to warm up, then ``--requests`` between zeroing the counters
and dumping them. Only the application's process is counted (every thread of it): PostgreSQL
and Redis run in processes of their own, and waiting on them costs no instructions. The
dispatcher's "pending" flag is set before the count, so no send publishes a task during it
(under load it is set nearly always; a publish is a broker round trip outside what this
measures).

To compare two commits, run it in a checkout of each (``git worktree add``); the counts of
one commit differ by about 1% from run to run. It needs valgrind (``apt-get install
valgrind``) and takes about a minute and a half per kind.

``--cpu`` runs the same requests without valgrind and prints the process's CPU time per
request instead (``--requests 3000`` or so for a steady figure): the application's cost
with no server around it, which moves with the machine's speed as instructions do not.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT, fresh_account

DATABASE = "mifumo_bench_instructions"
REDIS_DB = 10
WARM_UP = 30
SEND = "/api/integration/v1/sms/send/"
KINDS = {
    "send": ("POST", SEND, ""),
    "status": ("GET", "/api/integration/v1/sms/status/{message_id}/", ""),
    "reports": ("GET", "/api/integration/v1/sms/delivery-reports/", "per_page=50"),
    "search": ("GET", "/api/integration/v1/contacts/search/", "q=Customer%201"),
    "healthz": ("GET", "/healthz", ""),
}


def _caller(key: str) -> Callable[[str, str, str, bytes], tuple[str, bytes]]:
    """A function that calls the WSGI application with one request and returns its status
    and body (Django is set up on the first call)."""
    from mifumo.wsgi import application

    def call(method: str, path: str, query: str, body: bytes) -> tuple[str, bytes]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_AUTHORIZATION": f"Bearer {key}",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
        }
        if body:
            environ["CONTENT_TYPE"] = "application/json"
            environ["CONTENT_LENGTH"] = str(len(body))
        status: list[str] = []
        response = application(environ, lambda line, headers, exc_info=None: status.append(line))
        try:
            payload = b"".join(response)
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()
        return status[0], payload

    return call


def _send_body(n: int) -> bytes:
    return json.dumps({"message": f"Habari {n}", "recipients": [f"+25571{n:06d}5"]}).encode()


def _ok(answer: tuple[str, bytes]) -> dict[str, Any]:
    status, payload = answer
    if not status.startswith(("200", "201")):
        raise SystemExit(f"the application answered {status}: {payload[:300]!r}")
    return dict(json.loads(payload)) if payload.startswith(b"{") else {}


def child_setup(key: str) -> None:
    """The data the reads read: 50 sends and 50 contacts."""
    call = _caller(key)
    for n in range(50):
        _ok(call("POST", SEND, "", _send_body(n)))
    for n in range(50):
        body = json.dumps({"name": f"Customer {n}", "phone_number": f"+25575{n:07d}"}).encode()
        _ok(call("POST", "/api/integration/v1/contacts/create/", "", body))


def child_count(key: str, kind: str, requests: int, *, cpu: bool = False) -> None:
    """Run ``kind`` under callgrind: warm up, then count ``requests`` of it. With ``cpu``,
    outside valgrind: print the CPU time per request of ``requests`` of it instead."""
    call = _caller(key)  # sets Django up

    from django.core.cache import cache

    from sms.dispatch.wake import PENDING

    method, path, query = KINDS[kind]
    if "{message_id}" in path:
        sent = _ok(call("POST", SEND, "", _send_body(99)))
        path = path.format(message_id=sent["data"]["message_id"])
    cache.set(PENDING, 1, timeout=3600)

    def body(n: int) -> bytes:
        return _send_body(100 + n) if method == "POST" else b""

    for n in range(WARM_UP):
        _ok(call(method, path, query, body(n)))
    if cpu:
        started = time.process_time()
    else:
        _control("-z")
    for n in range(WARM_UP, WARM_UP + requests):
        _ok(call(method, path, query, body(n)))
    if cpu:
        print(f"{(time.process_time() - started) / requests * 1000:.3f}")
    else:
        _control("-d")


def _control(option: str) -> None:
    """Zero (-z) or dump (-d) this process's callgrind counters."""
    subprocess.run(["callgrind_control", option, str(os.getpid())], check=True, capture_output=True)


def _counted(outputs: Iterable[Path]) -> int:
    """The instructions of the dump made by ``-d`` (callgrind numbers it ``.1``)."""
    for path in outputs:
        if path.name.endswith(".1"):
            match = re.search(r"^summary: (\d+)", path.read_text(), re.MULTILINE)
            if match:
                return int(match[1])
    raise SystemExit("callgrind wrote no dump: is valgrind installed?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--only", default=",".join(KINDS))
    parser.add_argument("--cpu", action="store_true", help="CPU time per request, without valgrind")
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        key = os.environ["MIFUMO_BENCH_KEY"]
        if args.child == ["setup"]:
            child_setup(key)
        else:
            child_count(key, args.child[0], args.requests, cpu=args.cpu)
        return
    kinds = [kind.strip() for kind in args.only.split(",") if kind.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown kinds {unknown}; choose from {', '.join(KINDS)}")
    env, key = fresh_account(DATABASE, REDIS_DB)
    env["MIFUMO_BENCH_KEY"] = key
    module = ["-m", "bench.instructions", "--requests", str(args.requests)]
    subprocess.run([PYTHON, *module, "--child", "setup"], cwd=ROOT, env=env, check=True)
    commit = subprocess.run(
        ["git", "log", "-1", "--format=%h"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    for kind in kinds:
        if args.cpu:
            child = subprocess.run(
                [PYTHON, *module, "--cpu", "--child", kind],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            per_request_ms = float(child.stdout.split()[-1])
            print(f"{kind:8s} {per_request_ms:6.3f} ms of CPU per request  ({commit})")
            continue
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "callgrind.out"
            subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={out}",
                    PYTHON,
                    *module,
                    "--child",
                    kind,
                ],
                cwd=ROOT,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            per_request = _counted(Path(folder).iterdir()) / args.requests
        print(f"{kind:8s} {per_request / 1e6:6.3f} M instructions per request  ({commit})")


if __name__ == "__main__":
    main()
