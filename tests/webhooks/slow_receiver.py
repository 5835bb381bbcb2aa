"""A real TCP receiver on 127.0.0.1 that answers as slowly as a hostile one can: it reads the
request (unless ``read_request`` is off: it then starts at once, as a TLS server would), sends
the first ``fast`` bytes of its answer at once and then the rest one byte every ``interval``
seconds, keeping the connection busy for as long as it likes; then it reads the next request
on the same connection, as a keep-alive server does.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
    b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"
    b'{"ok":true}'
)


class DribblingReceiver:
    def __init__(
        self,
        *,
        fast: int = 0,
        interval: float = 0.5,
        answer: bytes = ANSWER,
        read_request: bool = True,
    ) -> None:
        self.fast = fast
        self.read_request = read_request
        self.interval = interval
        self.answer = answer
        self.requests = 0
        self.connections = 0
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = int(self._server.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        # Request after request on the connection, as a keep-alive server does, until the
        # client closes it (one answer only when the request is not read).
        with contextlib.closing(conn):
            conn.settimeout(5)
            while not self._stop.is_set():
                received = b"" if self.read_request else b"\r\n\r\n"
                try:
                    while b"\r\n\r\n" not in received:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        received += chunk
                except OSError:
                    return
                self.requests += 1
                try:
                    conn.sendall(self.answer[: self.fast])
                    for byte in self.answer[self.fast :]:
                        if self._stop.wait(self.interval):
                            return
                        conn.sendall(bytes([byte]))
                except OSError:
                    return  # the client gave up
                if not self.read_request:
                    return

    def stop(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(5)
        # Let the answering threads see the stop.
        time.sleep(0.05)
