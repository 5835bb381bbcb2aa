"""A real HTTP proxy on 127.0.0.1 in front of the test server that fails the requests it is
told to, the ways networks and load balancers fail: an answer lost after the server did the
work (a gateway's 503, Mifumo's own 503, a cut connection), a late answer, a page that is not
the API's. Every request that reaches it is recorded.
"""

from __future__ import annotations

import enum
import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}


class Fault(enum.Enum):
    NONE = "pass the request and its answer through"
    GATEWAY_503 = "pass the request on, then answer a gateway's bare 503 instead"
    ENVELOPE_503 = "pass the request on, then answer SERVICE_UNAVAILABLE with Retry-After: 1"
    CUT = "pass the request on, then close the connection without an answer"
    SLOW = "wait two seconds before passing the request on"
    HTML_502 = "answer a gateway's HTML 502 without passing the request on"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    fault: Fault

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = proxy._next_fault()
        proxy._record(Seen(self.command, self.path, dict(self.headers.items()), body, fault))
        if fault is Fault.HTML_502:
            self._answer(502, {"Content-Type": "text/html"}, b"<html><h1>502 Bad Gateway</h1>")
            return
        if fault is Fault.SLOW:
            time.sleep(2)
        status, headers, answer = proxy._forward(self.command, self.path, self.headers, body)
        if fault is Fault.GATEWAY_503:
            self._answer(503, {"Content-Type": "text/plain"}, b"upstream connect error")
        elif fault is Fault.ENVELOPE_503:
            envelope = {
                "success": False,
                "message": "Service temporarily unavailable",
                "data": None,
                "error_code": "SERVICE_UNAVAILABLE",
                "details": None,
            }
            headers = {"Content-Type": "application/json", "Retry-After": "1"}
            self._answer(503, headers, json.dumps(envelope).encode())
        elif fault is Fault.CUT:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self._answer(status, headers, answer)

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up first

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultyProxy


class FaultyProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.requests: list[Seen] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def fail_next(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def _next_fault(self) -> Fault:
        with self._lock:
            return self._faults.pop(0) if self._faults else Fault.NONE

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def _forward(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            outgoing = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            connection.request(method, path, body=body or None, headers=outgoing)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def on(self, path_start: str) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.requests if seen.path.startswith(path_start)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
