"""A small SMSC for the SMPP carrier's tests and benchmark.

It speaks real SMPP 3.4 over TCP and decodes with smpp34's codec, which shares no code with
smpplib (the carrier's codec), so the two sides check each other. Its behaviour per submit_sm
is a *policy*: a command_status to answer with, ``HOLD`` (never answer) or ``DROP`` (close the
connection without answering). Everything received is recorded for assertions.

Like a production SMSC it can answer after a ``latency`` (answers then come back in any order,
or in the order received with ``in_order``), go down on request (``outage``: every connection
cut, binds refused for a while) and keep the receipts an ESME never acknowledged to deliver
them again on the next bind (``redeliver_receipts``).

It can also behave like the gateways that made trouble in production: ``throttle_rate``
answers ESME_RTHROTTLED (0x58) to submits past N in any second, ``receipt_first`` sends an
accepted submit's receipt that many seconds *before* its submit_sm_resp (a receipt racing its
own acknowledgement), and ``message_ids`` may issue ids with leading zeros (``zero_led_ids``).
Receipt texts write ``done date`` to the minute, as SMPP 3.4 Appendix B does.

Run as a program it serves until stdin closes, for the benchmark in another process:
``python -m tests.carriers.smsc --receipts DELIVRD --timings FILE [--throttle N]`` prints
``PORT <n>``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import queue
import socket
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import smpp34

from sms.encoding import GSM7, analyze, decode_gsm7, encode_gsm7, encode_ucs2

HEADER = struct.Struct(">LLLL")

BIND_TRANSCEIVER = 0x09
BIND_TRANSCEIVER_RESP = 0x80000009
SUBMIT_SM = 0x04
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM_RESP = 0x80000005
DATA_SM = 0x00000103
DATA_SM_RESP = 0x80000103
UNBIND = 0x06
UNBIND_RESP = 0x80000006
ENQUIRE_LINK = 0x15
ENQUIRE_LINK_RESP = 0x80000015
GENERIC_NACK = 0x80000000

ESME_ROK = 0x00
ESME_RINVBNDSTS = 0x04
ESME_RINVPASWD = 0x0E
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58

TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
TLV_NETWORK_ERROR_CODE = 0x0423
TLV_MESSAGE_PAYLOAD = 0x0424

HOLD = "hold"
DROP = "drop"

REDELIVER_AFTER = 0.5  # seconds before a receipt the ESME refused is sent again

Reply = int | str  # a command_status, HOLD or DROP


@dataclass(frozen=True)
class Bind:
    session: int
    system_id: str
    password: str
    system_type: str
    interface_version: int


@dataclass
class Submit:
    """One submit_sm as the SMSC received it, and how it was answered (status None: never)."""

    session: int
    sequence: int
    pdu: Any  # smpp34.SubmitSm
    received_at: float
    status: int | None = None
    message_id: str | None = None

    @property
    def destination_addr(self) -> str:
        return str(self.pdu.destination_addr)

    @property
    def data_coding(self) -> int:
        return int(self.pdu.data_coding)

    @property
    def esm_class(self) -> int:
        return int(self.pdu.esm_class)

    @property
    def short_message(self) -> bytes:
        return bytes(self.pdu.short_message)

    @property
    def tlvs(self) -> dict[int, bytes]:
        return {tlv.tag: bytes(tlv.value) for tlv in self.pdu.tlvs}

    @property
    def udh(self) -> bytes:
        if not self.esm_class & 0x40:
            return b""
        return self.short_message[: self.short_message[0] + 1]

    @property
    def payload(self) -> bytes:
        return self.short_message[len(self.udh) :]

    @property
    def text(self) -> str:
        if self.data_coding == 0x08:
            return self.payload.decode("utf-16-be")
        return decode_gsm7(self.payload)

    @property
    def concatenation(self) -> tuple[int, int, int] | None:
        """(reference, total, number) from a concatenation IE or from the SAR TLVs."""
        udh = self.udh
        position = 1
        while position < len(udh):
            element, length = udh[position], udh[position + 1]
            data = udh[position + 2 : position + 2 + length]
            if element == 0x00:
                return data[0], data[1], data[2]
            if element == 0x08:
                return int.from_bytes(data[:2], "big"), data[2], data[3]
            position += 2 + length
        tlvs = self.tlvs
        if TLV_SAR_MSG_REF_NUM in tlvs:
            return (
                int.from_bytes(tlvs[TLV_SAR_MSG_REF_NUM], "big"),
                tlvs[TLV_SAR_TOTAL_SEGMENTS][0],
                tlvs[TLV_SAR_SEGMENT_SEQNUM][0],
            )
        return None

    @property
    def segment(self) -> tuple[int, int, int]:
        """``concatenation`` of a part that must have one."""
        info = self.concatenation
        assert info is not None, "not a part of a concatenated message"
        return info


Policy = Callable[[Submit], Reply]


def accept_all(submit: Submit) -> Reply:
    return ESME_ROK


def hex_ids(number: int) -> str:
    """Upper-case hex ids that always hold a letter, as many SMSCs issue them."""
    return f"{0xA0000000 + number:08X}"


def zero_led_ids(number: int) -> str:
    """UUID-shaped ids whose first digit is a zero, as in ``0d83cf82-…``."""
    return f"0d83{number:04x}-5a1e-4c2b-9f00-{number:012X}"


def receipt_text(
    message_id: str,
    stat: str,
    *,
    err: str = "000",
    submitted: datetime | None = None,
    done: datetime | None = None,
    text: str = "",
) -> bytes:
    """The SMPP 3.4 Appendix B receipt text."""
    submitted = submitted or datetime.now(UTC)
    done = done or datetime.now(UTC)
    delivered = "001" if stat == "DELIVRD" else "000"
    return (
        f"id:{message_id} sub:001 dlvrd:{delivered} submit date:{submitted:%y%m%d%H%M} "
        f"done date:{done:%y%m%d%H%M} stat:{stat} err:{err} text:{text[:20]}"
    ).encode("latin-1")


@dataclass(frozen=True)
class _Receipt:
    """A deliver_sm receipt the SMSC owes an ESME until it is acknowledged."""

    source_addr: str
    destination_addr: str
    text: bytes


class _Connection:
    def __init__(self, sock: socket.socket, number: int) -> None:
        self.sock = sock
        self.number = number
        self.bound = False
        self.ended = False
        self.receipts: dict[int, _Receipt] = {}  # deliver_sm sequence -> receipt, unanswered
        self.unanswered = 0  # submit_sm received and not answered yet
        # Answers waiting for their latency, in the order received (``in_order``).
        self.answers: queue.Queue[tuple[float, Submit, int] | None] | None = None
        self.write_lock = threading.Lock()
        self.sequences = itertools.count(1)
        self.buffer = bytearray()

    def send(self, data: bytes) -> None:
        with contextlib.suppress(OSError), self.write_lock:
            self.sock.sendall(data)

    def respond(self, command: int, sequence: int, status: int = 0, body: bytes = b"") -> None:
        self.send(HEADER.pack(16 + len(body), command, status, sequence) + body)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()

    def frames(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            self.buffer += chunk
            while len(self.buffer) >= 16:
                length = int.from_bytes(self.buffer[:4], "big")
                if len(self.buffer) < length:
                    break
                frame = bytes(self.buffer[:length])
                del self.buffer[:length]
                yield frame


class Smsc:
    """A threaded SMSC on 127.0.0.1 and a free port (see the module docstring)."""

    def __init__(
        self,
        *,
        system_id: str = "mifumo",
        password: str = "secret",  # noqa: S107 - a test SMSC's fixed credential
        policy: Policy = accept_all,
        message_ids: Callable[[int], str] = hex_ids,
        auto_receipt: str | None = None,
        receipt_id: Callable[[str], str] = str,
        latency: float = 0.0,
        in_order: bool = False,
        redeliver_receipts: bool = False,
        throttle_rate: int = 0,
        receipt_first: float = 0.0,
    ) -> None:
        self.system_id = system_id
        self.password = password
        self.policy = policy
        self.message_ids = message_ids
        self.auto_receipt = auto_receipt  # a stat to send a receipt with after every accept
        self.receipt_id = receipt_id  # how the receipt text writes the submit's id
        self.latency = latency  # seconds before each submit_sm_resp
        # Answer each connection's submits in the order received (one timer each otherwise,
        # and timers fire in any order on a busy machine).
        self.in_order = in_order
        # Per session, the most submit_sm that were received and not answered at one time:
        # an ESME never has more than its window unacknowledged, so never more than that.
        self.most_unanswered: dict[int, int] = {}
        # Receipts not acknowledged with ESME_ROK are sent again: on the next bind when their
        # connection ends, after REDELIVER_AFTER when the ESME asked for it.
        self.redeliver_receipts = redeliver_receipts
        # Submits past this many in the last second are answered ESME_RTHROTTLED (0: never).
        self.throttle_rate = throttle_rate
        self.throttled = 0  # submits answered ESME_RTHROTTLED
        self._recent: list[float] = []  # when the submits of the last second were let through
        # Seconds between an accepted submit's receipt and its submit_sm_resp (0: resp first).
        self.receipt_first = receipt_first
        self.receipts_redelivered = 0
        self.refused_binds = 0
        self.outages: list[list[int]] = []  # per outage, the sessions that were bound
        self._undelivered: list[_Receipt] = []
        self._refuse_binds_until = 0.0
        self.binds: list[Bind] = []
        self.submits: list[Submit] = []
        self.deliver_responses: dict[int, int] = {}  # deliver_sm sequence -> command_status
        self.enquire_links = 0
        self.enquire_link_responses = 0
        self.unbinds = 0
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        self._connections: list[_Connection] = []
        self._threads: list[threading.Thread] = []
        self._numbers = itertools.count(1)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Smsc:
        self._spawn(self._accept_loop, "smsc-accept")
        return self

    def stop(self) -> None:
        self.close_listener()
        self.drop_connections()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Smsc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def close_listener(self) -> None:
        """Stop accepting connections (new binds fail with connection refused)."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()

    def drop_connections(self) -> None:
        """Close every connection abruptly, without unbind."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()

    def outage(self, refuse_binds_for: float = 0.0) -> list[int]:
        """Close every connection abruptly and, for ``refuse_binds_for`` seconds, close any
        connection that asks to bind without answering it. Returns the sessions that were
        bound when the line went down (also appended to ``outages``)."""
        with self._lock:
            self._refuse_binds_until = time.monotonic() + refuse_binds_for
            cut = [c.number for c in self._connections if c.bound]
            self.outages.append(cut)
        self.drop_connections()
        return cut

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(sock, next(self._numbers))
            with self._lock:
                self._connections.append(connection)
            self._spawn(self._serve, f"smsc-session-{connection.number}", connection)

    # -- queries -------------------------------------------------------------------------

    def accepted(self) -> list[Submit]:
        with self._lock:
            return [s for s in self.submits if s.status == ESME_ROK]

    def accepted_by_destination(self) -> Counter[str]:
        return Counter(s.destination_addr for s in self.accepted())

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.05))
        return True

    def bound_sessions(self) -> list[int]:
        with self._lock:
            return [c.number for c in self._connections if c.bound]

    def in_flight(self) -> int:
        """Submits received on a bound connection and not answered yet."""
        with self._lock:
            bound = {c.number for c in self._connections if c.bound}
            return sum(1 for s in self.submits if s.status is None and s.session in bound)

    def receipts_owed(self) -> int:
        """Receipts sent or waiting to be sent that the ESME has not acknowledged yet."""
        with self._lock:
            return len(self._undelivered) + sum(len(c.receipts) for c in self._connections)

    def submits_by_session(self) -> dict[int, list[Submit]]:
        """Every submit received, per session, in the order received."""
        sessions: dict[int, list[Submit]] = {}
        with self._lock:
            for submit in self.submits:
                sessions.setdefault(submit.session, []).append(submit)
        return sessions

    def bound_connection(self) -> _Connection:
        with self._lock:
            bound = [c for c in self._connections if c.bound]
        assert bound, "no ESME is bound"
        return bound[-1]

    # -- pushing to the ESME -------------------------------------------------------------

    def deliver(
        self,
        short_message: bytes = b"",
        *,
        esm_class: int = 0x04,
        source_addr: str = "255712345678",
        destination_addr: str = "MIFUMO",
        data_coding: int = 0,
        tlvs: list[tuple[int, bytes]] | None = None,
    ) -> int:
        """Send a deliver_sm to the bound ESME; returns its sequence number."""
        connection = self.bound_connection()
        sequence = next(connection.sequences)
        pdu = smpp34.DeliverSm(
            source_addr,
            destination_addr,
            short_message,
            esm_class=esm_class,
            data_coding=data_coding,
            tlvs=[smpp34.Tlv(tag, value) for tag, value in tlvs or []],
            sequence_number=sequence,
        )
        connection.send(pdu.encode())
        return sequence

    def deliver_receipt(self, message_id: str, stat: str, **kwargs: Any) -> int:
        return self.deliver(receipt_text(message_id, stat, **kwargs))

    def enquire_link(self) -> None:
        connection = self.bound_connection()
        connection.respond(ENQUIRE_LINK, next(connection.sequences))

    def hold_receipt(
        self,
        message_id: str,
        stat: str,
        *,
        source_addr: str = "255712345678",
        destination_addr: str = "MIFUMO",
    ) -> None:
        """Keep a receipt for the next bind, as for a message that reached its handset while
        no ESME was bound (needs ``redeliver_receipts``)."""
        receipt = _Receipt(source_addr, destination_addr, receipt_text(message_id, stat))
        with self._lock:
            self._undelivered.append(receipt)

    def release_held(self) -> None:
        """Answer every submit held so far with ESME_ROK."""
        with self._lock:
            held = [s for s in self.submits if s.status is None]
            connections = {c.number: c for c in self._connections}
        for submit in held:
            connection = connections.get(submit.session)
            if connection is not None:
                self._answer(connection, submit, ESME_ROK)

    # -- the protocol --------------------------------------------------------------------

    def _serve(self, connection: _Connection) -> None:
        for frame in connection.frames():
            _, command, status, sequence = HEADER.unpack_from(frame)
            if not self._handle(connection, frame, command, status, sequence):
                break
        connection.close()
        if connection.answers is not None:
            connection.answers.put(None)
        with self._lock:
            connection.bound = False
            connection.ended = True
            self._undelivered.extend(connection.receipts.values())
            connection.receipts.clear()
            self._lock.notify_all()

    def _handle(
        self, connection: _Connection, frame: bytes, command: int, status: int, sequence: int
    ) -> bool:
        """Act on one PDU; False ends the connection."""
        if command == BIND_TRANSCEIVER:
            return self._on_bind(connection, frame, sequence)
        if command == SUBMIT_SM:
            return self._on_submit(connection, frame, sequence)
        with self._lock:
            if command == ENQUIRE_LINK:
                self.enquire_links += 1
            elif command == ENQUIRE_LINK_RESP:
                self.enquire_link_responses += 1
            elif command == DATA_SM_RESP:
                self.deliver_responses[sequence] = status
            elif command == DELIVER_SM_RESP:
                self.deliver_responses[sequence] = status
                receipt = connection.receipts.pop(sequence, None)
                if receipt is not None and status != ESME_ROK:
                    self._undelivered.append(receipt)
                    self._later(REDELIVER_AFTER, self._redeliver)
            elif command == UNBIND:
                self.unbinds += 1
            self._lock.notify_all()
        if command == ENQUIRE_LINK:
            connection.respond(ENQUIRE_LINK_RESP, sequence)
        elif command == UNBIND:
            connection.respond(UNBIND_RESP, sequence)
            return False
        elif not command & 0x80000000:
            connection.respond(GENERIC_NACK, sequence, 0x03)
        return True

    def _on_bind(self, connection: _Connection, frame: bytes, sequence: int) -> bool:
        pdu = smpp34.decode(frame)
        assert isinstance(pdu, smpp34.RawPdu)
        body = bytes(pdu.body)
        system_id, password, system_type, rest = body.split(b"\x00", 3)
        bind = Bind(
            connection.number,
            system_id.decode(),
            password.decode(),
            system_type.decode(),
            rest[0],
        )
        good = (bind.system_id, bind.password) == (self.system_id, self.password)
        if time.monotonic() < self._refuse_binds_until:
            with self._lock:
                self.refused_binds += 1
            return False
        with self._lock:
            self.binds.append(bind)
            connection.bound = good
            self._lock.notify_all()
        if not good:
            connection.respond(BIND_TRANSCEIVER_RESP, sequence, ESME_RINVPASWD)
            return False
        if not self.redeliver_receipts:
            connection.respond(BIND_TRANSCEIVER_RESP, sequence, body=b"TESTSMSC\x00")
            return True
        # Receipts kept for the ESME follow the bind response in the same write, as from an
        # SMSC that empties its store the moment a bind succeeds.
        body = b"TESTSMSC\x00"
        response = HEADER.pack(16 + len(body), BIND_TRANSCEIVER_RESP, ESME_ROK, sequence) + body
        with self._lock:
            waiting, self._undelivered = self._undelivered, []
            self.receipts_redelivered += len(waiting)
        connection.send(response + b"".join(self._owe(connection, r) for r in waiting))
        return True

    def _on_submit(self, connection: _Connection, frame: bytes, sequence: int) -> bool:
        if not connection.bound:
            connection.respond(SUBMIT_SM_RESP, sequence, ESME_RINVBNDSTS)
            return True
        submit = Submit(connection.number, sequence, smpp34.decode(frame), time.monotonic())
        with self._lock:
            self.submits.append(submit)
            connection.unanswered += 1
            most = self.most_unanswered.get(connection.number, 0)
            self.most_unanswered[connection.number] = max(most, connection.unanswered)
            self._lock.notify_all()
        reply = self._throttle() or self.policy(submit)
        if reply == DROP:
            return False
        if reply != HOLD and self.latency > 0 and self.in_order:
            if connection.answers is None:
                connection.answers = queue.Queue()
                self._spawn(self._answer_in_order, f"smsc-answers-{connection.number}", connection)
            connection.answers.put((submit.received_at + self.latency, submit, int(reply)))
        elif reply != HOLD and self.latency > 0:
            self._later(self.latency, self._answer, connection, submit, int(reply))
        elif reply != HOLD:
            self._answer(connection, submit, int(reply))
        return True

    def _throttle(self) -> Reply | None:
        """ESME_RTHROTTLED when ``throttle_rate`` submits were let through in the last second."""
        if not self.throttle_rate:
            return None
        now = time.monotonic()
        with self._lock:
            self._recent = [t for t in self._recent if now - t < 1.0]
            if len(self._recent) >= self.throttle_rate:
                self.throttled += 1
                return ESME_RTHROTTLED
            self._recent.append(now)
        return None

    def _answer(self, connection: _Connection, submit: Submit, status: int) -> None:
        body = b""
        if status == ESME_ROK:
            submit.message_id = self.message_ids(next(self._ids))
            body = submit.message_id.encode() + b"\x00"
            if self.receipt_first and self.auto_receipt:
                self._send_receipt(connection, submit)
                self._later(self.receipt_first, self._respond, connection, submit, status, body)
                return
        self._respond(connection, submit, status, body)
        if status == ESME_ROK and self.auto_receipt and submit.message_id:
            self._send_receipt(connection, submit)

    def _respond(self, connection: _Connection, submit: Submit, status: int, body: bytes) -> None:
        with self._lock:
            submit.status = status
            connection.unanswered -= 1
            self._lock.notify_all()
        connection.respond(SUBMIT_SM_RESP, submit.sequence, status, body)

    def _send_receipt(self, connection: _Connection, submit: Submit) -> None:
        assert self.auto_receipt and submit.message_id
        text = receipt_text(self.receipt_id(submit.message_id), self.auto_receipt)
        if self.redeliver_receipts:
            receipt = _Receipt(submit.destination_addr, str(submit.pdu.source_addr), text)
            self._push_receipt(connection, receipt)
            return
        sequence = next(connection.sequences)
        pdu = smpp34.DeliverSm(
            submit.destination_addr,
            str(submit.pdu.source_addr),
            text,
            esm_class=0x04,
            sequence_number=sequence,
        )
        connection.send(pdu.encode())

    def _answer_in_order(self, connection: _Connection) -> None:
        assert connection.answers is not None
        while (item := connection.answers.get()) is not None:
            due, submit, status = item
            time.sleep(max(0.0, due - time.monotonic()))
            self._answer(connection, submit, status)

    def _push_receipt(self, connection: _Connection, receipt: _Receipt) -> None:
        """Send a receipt, owed until the ESME acknowledges it (or kept for the next bind)."""
        connection.send(self._owe(connection, receipt))

    def _owe(self, connection: _Connection, receipt: _Receipt) -> bytes:
        """The deliver_sm of ``receipt`` on ``connection``, now owed there; nothing (and the
        receipt kept for the next bind) when the connection has ended."""
        sequence = next(connection.sequences)
        with self._lock:
            if connection.ended:
                self._undelivered.append(receipt)
                return b""
            connection.receipts[sequence] = receipt
        pdu = smpp34.DeliverSm(
            receipt.source_addr,
            receipt.destination_addr,
            receipt.text,
            esm_class=0x04,
            sequence_number=sequence,
        )
        return bytes(pdu.encode())

    def _redeliver(self) -> None:
        """Send the receipts kept for the ESME on the latest bound connection, if any."""
        with self._lock:
            bound = [c for c in self._connections if c.bound]
            if not bound:
                return
            connection = bound[-1]
            waiting, self._undelivered = self._undelivered, []
            self.receipts_redelivered += len(waiting)
        for receipt in waiting:
            self._push_receipt(connection, receipt)

    def _later(self, delay: float, action: Callable[..., None], *args: Any) -> None:
        timer = threading.Timer(delay, action, args)
        timer.daemon = True
        timer.start()

    # -- messages from phones (mobile-originated) ------------------------------------------

    def deliver_mo(
        self,
        text: str,
        *,
        source_addr: str = "255712345678",
        destination_addr: str = "15555",
        concatenation: str = "udh8",
        parts: int | None = None,
        reference: int = 7,
        only: Sequence[int] | None = None,
    ) -> list[int]:
        """Send ``text`` as a phone would: one deliver_sm (esm_class without the receipt
        bits) per part, GSM 7-bit when it fits and UCS-2 otherwise. ``concatenation`` is
        "udh8" or "udh16" (a user data header with an 8- or 16-bit reference) or "sar" (the
        sar_ TLVs); ``parts`` splits the text into that many parts; ``only`` sends just
        those part numbers (from 1). Returns the sequence numbers sent."""
        data_coding, encode = mo_coding(text)
        chunks = _chunks(text, parts or 1)
        total = len(chunks)
        sequences = []
        for number, chunk in enumerate(chunks, start=1):
            if only is not None and number not in only:
                continue
            payload = encode(chunk)
            esm_class, tlvs = 0x00, []
            if total > 1 and concatenation == "sar":
                tlvs = [
                    (TLV_SAR_MSG_REF_NUM, reference.to_bytes(2, "big")),
                    (TLV_SAR_TOTAL_SEGMENTS, bytes([total])),
                    (TLV_SAR_SEGMENT_SEQNUM, bytes([number])),
                ]
            elif total > 1:
                esm_class = 0x40
                if concatenation == "udh16":
                    header = bytes([6, 0x08, 4]) + reference.to_bytes(2, "big")
                else:
                    header = bytes([5, 0x00, 3, reference & 0xFF])
                payload = header + bytes([total, number]) + payload
            sequences.append(
                self.deliver(
                    payload,
                    esm_class=esm_class,
                    source_addr=source_addr,
                    destination_addr=destination_addr,
                    data_coding=data_coding,
                    tlvs=tlvs,
                )
            )
        return sequences

    def deliver_payload(
        self, text: str, *, source_addr: str = "255712345678", destination_addr: str = "15555"
    ) -> int:
        """A deliver_sm with an empty short_message and the text in message_payload."""
        data_coding, encode = mo_coding(text)
        return self.deliver(
            b"",
            esm_class=0x00,
            source_addr=source_addr,
            destination_addr=destination_addr,
            data_coding=data_coding,
            tlvs=[(TLV_MESSAGE_PAYLOAD, encode(text))],
        )

    def data_sm(
        self, text: str, *, source_addr: str = "255712345678", destination_addr: str = "15555"
    ) -> int:
        """A data_sm with the text in message_payload; returns its sequence number."""
        data_coding, encode = mo_coding(text)
        connection = self.bound_connection()
        sequence = next(connection.sequences)
        payload = encode(text)
        body = (
            b"\x00"  # service_type
            + bytes([1, 1])
            + source_addr.encode()
            + b"\x00"
            + bytes([1, 1])
            + destination_addr.encode()
            + b"\x00"
            + bytes([0x00, 0x00, data_coding])  # esm_class, registered_delivery, data_coding
            + struct.pack(">HH", TLV_MESSAGE_PAYLOAD, len(payload))
            + payload
        )
        connection.send(HEADER.pack(16 + len(body), DATA_SM, 0, sequence) + body)
        return sequence


def mo_coding(text: str) -> tuple[int, Callable[[str], bytes]]:
    """data_coding and encoder of a phone's message: GSM 7-bit (unpacked) or UCS-2."""
    if analyze(text).encoding == GSM7:
        return 0x00, encode_gsm7
    return 0x08, encode_ucs2


def _chunks(text: str, count: int) -> list[str]:
    size = -(-len(text) // count) if text else 1
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# -- policies -------------------------------------------------------------------------------


@dataclass
class Sequenced:
    """Answers the n-th submit (counting from 1) with ``replies[n - 1]``, then ``default``."""

    replies: list[Reply]
    default: Reply = ESME_ROK
    seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, submit: Submit) -> Reply:
        with self.lock:
            self.seen += 1
            index = self.seen - 1
        return self.replies[index] if index < len(self.replies) else self.default


# -- program --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--receipts", default=None, help="stat of a receipt after each accept")
    parser.add_argument("--timings", default=None, help="write {message_id: received_at} here")
    parser.add_argument("--throttle", type=int, default=0, help="ESME_RTHROTTLED past N/s")
    args = parser.parse_args(argv)
    smsc = Smsc(auto_receipt=args.receipts, throttle_rate=args.throttle).start()
    print(f"PORT {smsc.port}", flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
    smsc.stop()
    if args.timings:
        with open(args.timings, "w", encoding="utf-8") as fh:
            json.dump({s.message_id: s.received_at for s in smsc.accepted()}, fh)


if __name__ == "__main__":
    main()
