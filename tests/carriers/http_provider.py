"""Local stand-ins for the HTTP SMS providers: real HTTP servers on 127.0.0.1, each in a thread,
answering as the provider documents and recording every request they receive.

A test can queue answers that take precedence over the documented behaviour
(``server.then(Reply(503))``), delay an answer to provoke a client timeout, or name numbers
the provider should refuse.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from sms.carriers import reset_carriers
from sms.carriers.base import OutboundSms

BEEM_API_KEY = "beem-key"
BEEM_SECRET_KEY = "beem-secret"
AT_USERNAME = "mifumo"
AT_API_KEY = "at-key"
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-token"


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(self.body.decode()).items()}

    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user, password


@dataclass
class Reply:
    status: int
    body: Any = None  # dict or list -> JSON; str or bytes -> as is
    content_type: str = "application/json"
    delay: float = 0.0  # seconds to wait before answering

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return b"" if self.body is None else json.dumps(self.body).encode()


class FakeProvider:
    """Subclasses implement ``answer`` with the provider's documented behaviour."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._queued: deque[Reply | None] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def then(self, *replies: Reply | None) -> None:
        """Answer the next requests with these replies, in order, whatever they ask; None
        answers one request as documented."""
        with self._lock:
            self._queued.extend(replies)

    def answer(self, request: Received) -> Reply:
        """The provider's documented answer; each fake provider defines its own."""
        raise NotImplementedError(f"{type(self).__name__} must define answer()")

    def _respond(self, request: Received) -> Reply:
        with self._lock:
            self.requests.append(request)
            queued = self._queued.popleft() if self._queued else None
        return queued if queued is not None else self.answer(request)

    def _busy(self, delta: int) -> None:
        with self._lock:
            self.in_flight += delta
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the carriers' pools expect

            def do_POST(self) -> None:
                self._serve()

            def do_GET(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Received(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length),
                )
                provider._busy(+1)
                try:
                    reply = provider._respond(request)
                    if reply.delay and provider._stopping.wait(reply.delay):
                        return
                finally:
                    provider._busy(-1)
                payload = reply.encoded()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: what a timeout test wants

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


# -- Beem Africa ------------------------------------------------------------------------------


class BeemServer(FakeProvider):
    def __init__(self, api_key: str = BEEM_API_KEY, secret_key: str = BEEM_SECRET_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.secret_key = secret_key
        # The numbers (dest_addr) Beem counts as invalid, without saying which.
        self.invalid: set[str] = set()
        self.accepted: list[tuple[str, str]] = []  # (request_id, dest_addr)
        self._ids = itertools.count(35918915)

    def answer(self, request: Received) -> Reply:
        if request.method != "POST" or request.path != "/v1/send":
            return Reply(404, {"message": "Not Found"})
        if request.basic_auth() != (self.api_key, self.secret_key):
            refused = {"code": 120, "message": "Invalid Authentication Parameters"}
            return Reply(401, {"data": refused})
        body = request.json()
        recipients = body.get("recipients") or []
        missing = [k for k in ("source_addr", "message", "recipients") if not body.get(k)]
        if missing:
            return Reply(400, {"successful": False, "code": 104, "message": "Missing parameters"})
        invalid = sum(1 for r in recipients if r["dest_addr"] in self.invalid)
        valid = len(recipients) - invalid
        if not valid:
            return Reply(400, {"successful": False, "code": 101, "message": "Invalid phone number"})
        request_id = next(self._ids)
        with self._lock:
            self.accepted += [(str(request_id), r["dest_addr"]) for r in recipients]
        return Reply(
            200,
            {
                "successful": True,
                "request_id": request_id,
                "code": 100,
                "message": "Message Submitted Successfully",
                "valid": valid,
                "invalid": invalid,
                "duplicates": 0,
            },
        )


# -- Africa's Talking -------------------------------------------------------------------------


class AfricasTalkingServer(FakeProvider):
    def __init__(self, username: str = AT_USERNAME, api_key: str = AT_API_KEY) -> None:
        super().__init__()
        self.username = username
        self.api_key = api_key
        # number -> (statusCode, status) for numbers the gateway refuses
        self.refuse: dict[str, tuple[int, str]] = {}
        self.accepted: list[tuple[str, str]] = []  # (messageId, number)

    def answer(self, request: Received) -> Reply:
        if request.method != "POST" or request.path != "/version1/messaging":
            return Reply(404, "Not Found", "text/plain")
        form = request.form()
        if request.headers.get("apikey") != self.api_key or form.get("username") != self.username:
            return Reply(401, "The supplied authentication is invalid", "text/plain")
        if not form.get("to") or not form.get("message"):
            return Reply(400, "Request is missing required form field 'to'", "text/plain")
        entries = []
        for number in form["to"].split(","):
            code, status = self.refuse.get(number, (101, "Success"))
            accepted = code in (100, 101, 102)
            message_id = f"ATXid_{uuid.uuid4().hex}" if accepted else "None"
            if accepted:
                with self._lock:
                    self.accepted.append((message_id, number))
            entries.append(
                {
                    "statusCode": code,
                    "number": number,
                    "status": status,
                    "cost": "TZS 20.0000" if accepted else "0",
                    "messageId": message_id,
                }
            )
        sent = sum(1 for e in entries if e["statusCode"] in (100, 101, 102))
        summary = f"Sent to {sent}/{len(entries)} Total Cost: TZS {20 * sent}.0000"
        return Reply(201, {"SMSMessageData": {"Message": summary, "Recipients": entries}})


# -- Twilio -----------------------------------------------------------------------------------


class TwilioServer(FakeProvider):
    def __init__(self, account_sid: str = TWILIO_SID, auth_token: str = TWILIO_TOKEN) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        # To -> (HTTP status, Twilio error code, message) for numbers Twilio refuses
        self.refuse: dict[str, tuple[int, int, str]] = {}
        self.accepted: list[tuple[str, str]] = []  # (sid, To)

    @property
    def messages_path(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def error(self, status: int, code: int, message: str) -> Reply:
        return Reply(
            status,
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
        )

    def answer(self, request: Received) -> Reply:
        if request.method != "POST" or request.path != self.messages_path:
            return self.error(404, 20404, "The requested resource was not found")
        if request.basic_auth() != (self.account_sid, self.auth_token):
            return self.error(401, 20003, "Authenticate")
        form = request.form()
        to = form.get("To", "")
        if to in self.refuse:
            return self.error(*self.refuse[to])
        if not form.get("Body") or not (form.get("From") or form.get("MessagingServiceSid")):
            return self.error(400, 21602, "Message body is required.")
        sid = "SM" + uuid.uuid4().hex
        with self._lock:
            self.accepted.append((sid, to))
        return Reply(
            201,
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": to,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": form["Body"],
                "status": "accepted" if form.get("MessagingServiceSid") else "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "error_code": None,
                "error_message": None,
            },
        )


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """How Twilio signs a callback: HMAC-SHA1 over the URL and the sorted name+value pairs."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    return base64.b64encode(
        hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    ).decode()


# -- shared by the carrier tests --------------------------------------------------------------

_recipient_ids = itertools.count(1)


def outbound(
    to: str = "+255712345678", text: str = "Habari", sender: str = "MIFUMO"
) -> OutboundSms:
    return OutboundSms(
        recipient_id=next(_recipient_ids), message_id="msg_01", to=to, sender_id=sender, text=text
    )


def configure(settings: Any, name: str, backend: str, **options: Any) -> None:
    """Add (or replace) one carrier in MIFUMO_CARRIERS and forget built instances."""
    settings.MIFUMO_CARRIERS = {**settings.MIFUMO_CARRIERS, name: {"BACKEND": backend, **options}}
    reset_carriers()


def reconfigure(settings: Any, name: str, **options: Any) -> None:
    """Change some options of a configured carrier."""
    current = dict(settings.MIFUMO_CARRIERS[name])
    backend = current.pop("BACKEND")
    configure(settings, name, backend, **{**current, **options})


def dlr_url(name: str, token: str | None = None) -> str:
    return f"/api/integration/carriers/{name}/dlr/" + (f"?token={token}" if token else "")
