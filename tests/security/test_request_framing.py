"""Request bodies are read as sent: a chunked body (no Content-Length) is read, within the
same size limit, by the production server; where the server cannot say where it ends the
answer is 411, never a request handled as if its body were empty. Requests the server
(granian) cannot take never reach Mifumo: it answers them itself (400, 414, 431). The server
process's environment variables are not part of a request."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from integration.models import Account
from mifumo.server_environ import ProcessEnvironDropped
from mifumo.wsgi import application
from sms.models import Message
from tests.helpers import ENVELOPE_KEYS

pytestmark = pytest.mark.slow

SEND = "/api/integration/v1/sms/send/"


def _chunks(data: bytes, size: int = 7) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_is_read_by_the_production_server(
    alice: Account, alice_key: Any, web_server: Any
) -> None:
    base = web_server()
    body = json.dumps({"message": "Habari kwa vipande", "recipients": ["+255712345678"]})
    response = httpx.post(
        base + SEND,
        content=_chunks(body.encode()),
        headers={"Authorization": f"Bearer {alice_key.raw}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 200, response.text
    message = Message.objects.get(pk=response.json()["data"]["message_id"])
    assert message.text == "Habari kwa vipande"


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_over_the_limit_is_refused(
    alice: Account, alice_key: Any, web_server: Any
) -> None:
    base = web_server(MIFUMO_MAX_BODY_BYTES="4096")
    filler = "x" * 10_000
    body = json.dumps({"message": filler, "recipients": ["+255712345678"]}).encode()
    response = httpx.post(
        base + SEND,
        content=_chunks(body, 1000),
        headers={"Authorization": f"Bearer {alice_key.raw}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error_code"] == "PAYLOAD_TOO_LARGE"
    assert not Message.objects.exists()


def test_a_chunked_body_a_server_does_not_end_is_411() -> None:
    # A WSGI server that leaves the body's end to the application (wsgiref, Django's
    # runserver) cannot hand it over: refused, not taken as empty.
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> Any:
        captured["status"] = status
        return lambda data: None

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": SEND,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(b'7\r\n{"a":1}\r\n0\r\n\r\n'),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    body = json.loads(b"".join(application(environ, start_response)))
    assert captured["status"].startswith("411")
    assert set(body) == ENVELOPE_KEYS and body["error_code"] == "VALIDATION_ERROR"
    assert "Content-Length" in body["message"]


BALANCE = b"/api/integration/v1/sms/balance/"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET " + BALANCE + b" HTTP/1.1 EXTRA\r\nHost: x\r\n", b"400"),
        (b"GET " + BALANCE + b"?q=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n", b"414"),
        (
            b"GET "
            + BALANCE
            + b" HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % n for n in range(120)),
            b"431",
        ),
    ],
    ids=["malformed request line", "URL over 64 KiB", "over 100 headers"],
)
def test_the_server_answers_what_it_cannot_parse_itself(
    web_server: Any, request_head: bytes, status: bytes
) -> None:
    base = urlsplit(web_server())
    with socket.create_connection((base.hostname or "", base.port or 0), timeout=10) as sock:
        sock.sendall(request_head + b"\r\n")
        answer = sock.recv(4096)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 " + status), answer[:200]
    # Its own bare answer, not an envelope: documented in the README.
    assert b'"error_code"' not in answer


@pytest.mark.django_db(transaction=True)
def test_the_server_process_environment_is_not_part_of_a_request(web_server: Any) -> None:
    # granian starts each request's environ from the process's environment: a variable named
    # like a header would read as one the client sent (the request id is echoed back).
    base = web_server(HTTP_X_REQUEST_ID="from-the-environment")
    without = httpx.get(base + "/healthz", timeout=10)
    assert without.status_code == 200
    assert without.headers["X-Request-Id"] not in {"", "from-the-environment"}
    sent = httpx.get(base + "/healthz", headers={"X-Request-Id": "client-request-1"}, timeout=10)
    assert sent.headers["X-Request-Id"] == "client-request-1"


def test_only_the_process_environment_is_dropped_from_a_request() -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        return []

    process = {
        "SECRET_KEY": "s3cret",
        "LANG": "C",
        "PATH_INFO": "/env",
        "HTTP_X_A": "env",
        "HTTP_X_B": "env",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "5",
    }
    wrapped = ProcessEnvironDropped(app, process)
    request = {"PATH_INFO": "/request", "HTTP_X_A": "client", "CONTENT_LENGTH": "0"}
    wrapped({**process, **request}, lambda *a: None)
    # What the server set for the request stays, whatever the process environment holds.
    assert seen == request
    seen.clear()
    wrapped({"PATH_INFO": "/", "LANG": "sent-by-nobody"}, lambda *a: None)
    assert seen == {"PATH_INFO": "/"}
