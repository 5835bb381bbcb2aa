"""The laptop default under a burst, as a new user meets it: ``python3 dev.py run`` on an empty
var directory with DATABASE_URL and REDIS_URL unset (the embedded PostgreSQL and Redis), then

1. ``--sends`` single-recipient sends with the demo key, from 8 threads, as fast as the rate
   limit lets them (a 429 is sent again after its Retry-After, as a client would), and the
   time from the last one accepted until every recipient is final;
2. the API guide's flow: a send with ``webhook_url``, its status polled until delivered and
   its ``message.delivered`` webhook (with the sending key as bearer) received, both within
   30 seconds.

    python3 -m bench.laptop_burst [--sends 200]

Needs nothing but Python; prints the figures and exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import free_port, start_dev_run

KEY_RE = re.compile(r"mif_live_[0-9A-Za-z]{32}")
FINAL = {"delivered", "failed"}


def request(url: str, key: str, body: Any = None) -> tuple[int, dict[str, Any], Message]:
    """Status, JSON body and headers (looked up without regard to case, as HTTP has them)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=data, headers=headers), timeout=30
        ) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), exc.headers


class Receiver(ThreadingHTTPServer):
    """Webhook requests, kept as (authorization header, JSON body)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        super().__init__(("127.0.0.1", free_port()), _Hook)


class _Hook(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.server.received.append((self.headers.get("Authorization", ""), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def wait(predicate: Any, timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


class Sender:
    """Sends with one key, sending a 429 again after its Retry-After, as a client would."""

    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.key = key
        self.limited = 0
        self._lock = threading.Lock()

    def send(self, body: dict[str, Any]) -> str:
        while True:
            status, answer, headers = request(f"{self.base}/sms/send/", self.key, body)
            if status == 200:
                return str(answer["data"]["message_id"])
            if status != 429:
                raise RuntimeError(f"send: {status} {answer}")
            with self._lock:
                self.limited += 1
            time.sleep(float(headers.get("Retry-After", "1")))


def burst(sender: Sender, sends: int) -> tuple[list[str], float]:
    """Message ids, and when the last was accepted (monotonic)."""

    def send(n: int) -> str:
        return sender.send({"message": f"Burst {n}", "recipients": [f"+25571{n:06d}5"]})

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(send, range(sends)))
    return ids, time.monotonic()


def still_pending(base: str, key: str, ids: set[str]) -> set[str]:
    """The messages of ``ids`` whose status is not final yet."""
    return {
        message_id
        for message_id in ids
        if request(f"{base}/sms/status/{message_id}/", key)[1]["data"]["status"] not in FINAL
    }


def guide_flow(sender: Sender) -> tuple[float, float]:
    """Seconds from the accepted send until the status says delivered and until the webhook
    arrived."""
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        hook = f"http://127.0.0.1:{receiver.server_address[1]}/sms-webhook"
        body = {
            "message": "Hello from Mifumo SMS!",
            "recipients": ["+255712345678"],
            "sender_id": "MIFUMO",
            "webhook_url": hook,
        }
        base, key = sender.base, sender.key
        message_id = sender.send(body)
        started = time.monotonic()  # the guide's 30 seconds count from the accepted send

        def delivered() -> bool:
            data = request(f"{base}/sms/status/{message_id}/", key)[1]["data"]
            return bool(data["status"] == "delivered")

        assert wait(delivered, 30), "the status did not reach delivered within 30 s"
        status_after = time.monotonic() - started

        def hooked() -> bool:
            return any(
                auth == f"Bearer {key}"
                and payload.get("event") == "message.delivered"
                and payload.get("message_id") == message_id
                for auth, payload in receiver.received
            )

        assert wait(hooked, 30 - status_after), (
            f"no message.delivered webhook within 30 s: {receiver.received}"
        )
        return status_after, time.monotonic() - started
    finally:
        receiver.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sends", type=int, default=200)
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="mifumo-burst-")) / "var"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(MIFUMO_VAR_DIR=str(var), PYTHONUNBUFFERED="1")
    log = var.parent / "run.log"
    run = start_dev_run(env, port, log)
    base = f"http://127.0.0.1:{port}/api/integration/v1"
    failed = False
    try:
        started = time.monotonic()
        keys = wait(lambda: KEY_RE.findall(log.read_text()), 300, 0.5)
        assert keys, f"no demo key:\n{log.read_text()[-3000:]}"
        key = keys[0]
        assert wait(lambda: _answers(base, key), 60), "the API did not answer"
        print(f"dev.py run ready in {time.monotonic() - started:.1f} s (embedded servers)")

        sender = Sender(base, key)
        first = time.monotonic()
        ids, last_accepted = burst(sender, args.sends)
        print(
            f"{args.sends} sends accepted in {last_accepted - first:.1f} s "
            f"({sender.limited} answered 429 and sent again after Retry-After)"
        )
        pending = set(ids)
        while pending and time.monotonic() - last_accepted < 120:
            pending = still_pending(base, key, pending)
        settled = time.monotonic() - last_accepted
        print(f"{len(ids) - len(pending)} of {len(ids)} final {settled:.1f} s after the last")
        if pending or settled > 30:
            print(f"FAIL: {len(pending)} not final")
            failed = True

        sender.limited = 0
        status_s, webhook_s = guide_flow(sender)
        if sender.limited:
            print(f"(the guide's send first waited out the rate limit: {sender.limited} x 429)")
        print(f"guide flow: delivered after {status_s:.1f} s, webhook after {webhook_s:.1f} s")
    except (AssertionError, RuntimeError) as exc:
        print(f"FAIL: {exc}")
        failed = True
    finally:
        os.killpg(run.pid, signal.SIGINT)
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            print("FAIL: dev.py run did not stop on Ctrl-C")
            failed = True
    if not failed:
        shutil.rmtree(var.parent, ignore_errors=True)
    else:
        print(f"log: {log}")
    return 1 if failed else 0


def _answers(base: str, key: str) -> bool:
    try:
        return request(f"{base}/sms/balance/", key)[0] == 200
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
