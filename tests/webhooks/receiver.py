"""A real HTTP receiver on 127.0.0.1, in a thread, that records every request.

It answers 200 unless told otherwise: a queue of scripted answers (status, delay, headers,
body) is consumed one per request, and it can be stopped and started again on the same port
to play a receiver that is down.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when the request arrived

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Answer:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok":true}'


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall between headers and body

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        receiver = self.server.receiver
        answer = receiver._record(
            Received(self.command, self.path, dict(self.headers.items()), body, time.monotonic())
        )
        if answer.delay:
            time.sleep(answer.delay)
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except OSError:
            pass  # the client gave up (timed out) first

    do_POST = _handle
    do_GET = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: Receiver


class Receiver:
    def __init__(self, port: int = 0) -> None:
        self.requests: list[Received] = []
        self._script: list[Answer] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = port or _free_port()
        self.start()

    # --- control ---------------------------------------------------------------------------
    def start(self) -> None:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    down = stop
    up = start

    def then(self, *answers: Answer) -> Receiver:
        with self._lock:
            self._script.extend(answers)
        return self

    def fail(self, times: int, status: int = 500) -> Receiver:
        return self.then(*[Answer(status=status, body=b"boom") for _ in range(times)])

    # --- what arrived ---------------------------------------------------------------------
    def _record(self, request: Received) -> Answer:
        with self._lock:
            self.requests.append(request)
            return self._script.pop(0) if self._script else Answer()

    @property
    def url(self) -> str:
        return self.url_for("/hook")

    def url_for(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def event_ids(self) -> list[str]:
        with self._lock:
            return [r.json()["event_id"] for r in self.requests]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
