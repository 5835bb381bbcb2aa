"""SMPP 3.4 carrier: one transceiver bind to an SMSC, kept open, with a window of submits.

Threads, per open carrier:

* the caller of ``send_messages`` drives its own batch: it puts submit_sm PDUs on the wire
  while fewer than ``WINDOW`` are unacknowledged, then waits on a condition variable; given
  ``on_accepted``, it also hands over the recipients whose parts are all acknowledged, at
  most ``FLUSH_EVERY`` (50 ms) after the last acknowledgement, while the rest is in flight;
* one *session* thread owns the socket's read side: it correlates submit_sm_resp to the
  waiting part by sequence number, answers enquire_link and unbind, sends enquire_link when the
  link is idle, aborts a session whose SMSC stops answering, and reconnects with exponential
  backoff after the connection drops;
* one *receipt* thread parses deliver_sm, hands receipts to the sink in batches, and only then
  answers deliver_sm_resp, so a receipt the sink could not take is redelivered by the SMSC.

Pacing: with RATE, submits leave evenly spaced (a token bucket per bind without bursts, kept
from batch to batch; ``paces_itself`` tells the dispatcher not to cap batches per second too).
ESME_RTHROTTLED and ESME_RMSGQFUL are back-pressure, not failures: the bind pauses (backoff
doubling with each one in a row, up to ``MAX_THROTTLE_PAUSE``), the window in use halves, and
the part goes again without counting as a new attempt; each accepted submit grows the window
back by one over its size (additive increase), up to WINDOW. A part still refused after
THROTTLE_RETRIES is handed back as a temporary rejection.

Every write goes through one lock per session. Parts whose submit_sm_resp never arrived when a
session dies are sent again on the next session; acknowledged parts never are.

Options (``MIFUMO_CARRIERS[name]``): HOST, PORT, SYSTEM_ID, PASSWORD (required); SYSTEM_TYPE
(""), WINDOW (50), ENQUIRE_LINK_INTERVAL (30 s), SUBMIT_TIMEOUT (10 s), RECONNECT_BACKOFF
((1, 60) s, initial and max), CONCATENATION ("udh" or "sar"), REGISTERED_DELIVERY (1; 2 asks
for receipts of failures only, as some gateways want; 0 none),
SOURCE_TON / SOURCE_NPI (default: 5/0 for an alphanumeric sender, 1/1 for a numeric one),
DEST_TON / DEST_NPI (1/1), SERVICE_TYPE (""), RATE (submits per second on this bind, 0: as fast
as the window allows), THROTTLE_RETRIES (30), THROTTLE_BACKOFF (0.25 s),
MAX_RESUBMITS (3), SUBMIT_ID_RADIX / RECEIPT_ID_RADIX (see ``normalise_message_id``),
RECEIPT_TIMEZONE ("UTC", the zone of the dates written in receipt texts).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import random
import re
import select
import socket
import struct
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import smpplib.consts
import smpplib.smpp
from django.db import connections
from django.utils.module_loading import import_string

from sms.carriers.base import (
    AcceptedListener,
    BaseCarrier,
    CarrierError,
    DeliveryReceipt,
    DeliveryStatus,
    OutboundSms,
    SubmitResult,
)
from sms.encoding import GSM7, analyze, encode_gsm7, encode_ucs2, split_parts

logger = logging.getLogger(__name__)

# -- protocol constants -------------------------------------------------------------------

GENERIC_NACK = 0x80000000
BIND_TRANSCEIVER = 0x00000009
BIND_TRANSCEIVER_RESP = 0x80000009
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DATA_SM = 0x00000103
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015
RESPONSE_BIT = 0x80000000

ESME_ROK = 0x00
ESME_RINVCMDID = 0x03
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64  # "temporary application error": the SMSC redelivers later

TEMPORARY_STATUSES = frozenset({ESME_RMSGQFUL, ESME_RTHROTTLED})
CREDENTIAL_STATUSES = frozenset({ESME_RBINDFAIL, ESME_RINVPASWD, ESME_RINVSYSID})

DATA_CODING_DEFAULT = 0x00
DATA_CODING_UCS2 = 0x08
ESM_CLASS_UDHI = 0x40
ESM_CLASS_TYPE_MASK = 0x3C
ESM_CLASS_RECEIPT_TYPES = frozenset({0x04, 0x08, 0x10, 0x20})  # SMSC receipt, acks, notice

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_NETWORK_ERROR_CODE = 0x0423
TLV_MESSAGE_PAYLOAD = 0x0424
TLV_MESSAGE_STATE = 0x0427

# Stores messages from phones (mobile-originated): decoding and reassembly live there.
INBOUND_HANDLER = "sms.carriers.smpp.inbound.store_inbound"

HEADER = struct.Struct(">LLLL")
MAX_PDU_LENGTH = 64 * 1024
MAX_PARTS = 255  # a concatenation header counts parts in one octet
READ_TICK = 0.25  # how often the session thread looks at timers while the link is quiet
UNBIND_GRACE = 1.0  # an SMSC that never answers unbind must not hold up shutdown
MAX_THROTTLE_PAUSE = 2.0  # the longest a bind pauses after ESME_RTHROTTLED / ESME_RMSGQFUL
FLUSH_EVERY = 0.05  # the longest accepted recipients wait to be handed to ``on_accepted``

MESSAGE_STATES = {
    1: DeliveryStatus.ENROUTE,
    2: DeliveryStatus.DELIVERED,
    3: DeliveryStatus.EXPIRED,
    4: DeliveryStatus.UNDELIVERABLE,  # DELETED
    5: DeliveryStatus.UNDELIVERABLE,
    6: DeliveryStatus.ENROUTE,  # ACCEPTED
    7: DeliveryStatus.UNKNOWN,
    8: DeliveryStatus.REJECTED,
}

RECEIPT_STATS = {
    "DELIVRD": DeliveryStatus.DELIVERED,
    "DELIVERED": DeliveryStatus.DELIVERED,
    "UNDELIV": DeliveryStatus.UNDELIVERABLE,
    "UNDELIVERABLE": DeliveryStatus.UNDELIVERABLE,
    "EXPIRED": DeliveryStatus.EXPIRED,
    "REJECTD": DeliveryStatus.REJECTED,
    "REJECTED": DeliveryStatus.REJECTED,
    "ENROUTE": DeliveryStatus.ENROUTE,
    "ACCEPTD": DeliveryStatus.ENROUTE,
    "ACCEPTED": DeliveryStatus.ENROUTE,
    "DELETED": DeliveryStatus.UNDELIVERABLE,
}


# -- message ids and receipts ---------------------------------------------------------------


def normalise_message_id(value: str | bytes | None, *, radix: int | None = None) -> str:
    """The canonical form of an SMSC message id, identical for a submit and its receipts.

    Rule: strip NULs and blanks. When ``radix`` (10 or 16) is given and the id is a number in
    that base, render the number in lower-case hexadecimal without leading zeros. Otherwise
    (no radix, or an id that is not such a number) lower-case it and strip leading zeros,
    keeping a lone "0".

    Both branches agree on hexadecimal ids ("00A1F" -> "a1f" either way), so an SMSC that
    acknowledges submits with hex ids but writes decimal ids in its receipts is matched by
    setting ``RECEIPT_ID_RADIX = 10`` alone: receipt "2591" -> "a1f" == submit "A1F". An SMSC
    that uses one format throughout needs no setting; ids that differ only in case or in
    zero padding still match. Ids are never guessed to be decimal, because an all-digit hex id
    is common and converting it would break every SMSC that is consistent.
    """
    if value is None:
        return ""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    text = text.strip("\x00 \t\r\n")
    if radix is not None:
        try:
            return format(int(text, radix), "x")
        except ValueError:
            pass
    stripped = text.lower().lstrip("0")
    return stripped or ("0" if text else "")


_RECEIPT_KEYS = re.compile(
    r"(?<![a-z])(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err|text)\s*:",
    re.IGNORECASE,
)


def parse_receipt_text(text: str) -> dict[str, str]:
    """Fields of an SMPP 3.4 Appendix B receipt text, keyed id, sub, dlvrd, submit_date,
    done_date, stat, err and text. Case-insensitive; missing fields are simply absent; ``text``
    takes the rest of the string, whatever it contains."""
    fields: dict[str, str] = {}
    matches = list(_RECEIPT_KEYS.finditer(text))
    for index, match in enumerate(matches):
        key = re.sub(r"[ _]", "", match.group(1).lower()).replace("date", "_date")
        if key == "text":
            fields[key] = text[match.end() :].strip()
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        fields.setdefault(key, text[match.end() : end].strip())
    return fields


def receipt_status(stat: str | None, message_state: int | None = None) -> DeliveryStatus:
    """Map the message_state TLV (preferred: it is the formal field) or the text ``stat``.

    Anything not recognised is UNKNOWN, never DELIVERED.
    """
    if message_state is not None and message_state in MESSAGE_STATES:
        return MESSAGE_STATES[message_state]
    if stat:
        return RECEIPT_STATS.get(stat.strip().upper(), DeliveryStatus.UNKNOWN)
    return DeliveryStatus.UNKNOWN


def parse_receipt_date(value: str | None, zone: tzinfo = UTC) -> datetime | None:
    """YYMMDDhhmm or YYMMDDhhmmss in ``zone``, as an aware UTC datetime; None if unreadable."""
    digits = (value or "").strip()
    formats = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S"}
    if not digits.isdigit() or len(digits) not in formats:
        return None
    try:
        local = datetime.strptime(digits, formats[len(digits)])
    except ValueError:
        return None
    return local.replace(tzinfo=zone).astimezone(UTC)


# -- deliver_sm decoding ------------------------------------------------------------------


class ProtocolError(Exception):
    """A PDU that cannot be framed or decoded."""


@dataclass(frozen=True)
class DeliverSm:
    """The fields of a deliver_sm that receipts need.

    Decoded here rather than by smpplib because smpplib drops the last character of a C-string
    TLV sent without its NUL (as some SMSCs send receipted_message_id) and raises on TLVs it
    does not list for deliver_sm; either would lose the receipt.
    """

    source_addr: str
    destination_addr: str
    esm_class: int
    data_coding: int
    short_message: bytes
    tlvs: Mapping[int, bytes]

    @property
    def text(self) -> str:
        body = self.short_message or self.tlvs.get(TLV_MESSAGE_PAYLOAD, b"")
        if self.data_coding == DATA_CODING_UCS2:
            return body.decode("utf-16-be", "replace")
        # Receipt texts are ASCII; latin-1 keeps any stray octet instead of failing.
        return body.decode("latin-1")

    @property
    def looks_like_receipt(self) -> bool:
        return (
            (self.esm_class & ESM_CLASS_TYPE_MASK) in ESM_CLASS_RECEIPT_TYPES
            or TLV_RECEIPTED_MESSAGE_ID in self.tlvs
            or TLV_MESSAGE_STATE in self.tlvs
        )


class _BodyReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def octet(self) -> int:
        if self.pos >= len(self.data):
            raise ProtocolError("PDU body ends early")
        self.pos += 1
        return self.data[self.pos - 1]

    def octets(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise ProtocolError("PDU body ends early")
        self.pos += count
        return self.data[self.pos - count : self.pos]

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise ProtocolError("unterminated C-string")
        value = self.data[self.pos : end].decode("latin-1")
        self.pos = end + 1
        return value

    def tlvs(self) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        while len(self.data) - self.pos >= 4:
            tag, length = struct.unpack_from(">HH", self.data, self.pos)
            self.pos += 4
            found[tag] = self.octets(length)
        return found


def _addresses(reader: _BodyReader) -> tuple[str, str]:
    """service_type, then source and destination (each after its ton and npi)."""
    reader.cstring()  # service_type
    reader.octets(2)  # source ton, npi
    source = reader.cstring()
    reader.octets(2)  # destination ton, npi
    return source, reader.cstring()


def decode_deliver_sm(body: bytes) -> DeliverSm:
    reader = _BodyReader(body)
    source, destination = _addresses(reader)
    esm_class = reader.octet()
    reader.octets(2)  # protocol_id, priority_flag
    reader.cstring()  # schedule_delivery_time
    reader.cstring()  # validity_period
    reader.octets(2)  # registered_delivery, replace_if_present_flag
    data_coding = reader.octet()
    reader.octet()  # sm_default_msg_id
    short_message = reader.octets(reader.octet())
    return DeliverSm(source, destination, esm_class, data_coding, short_message, reader.tlvs())


def decode_data_sm(body: bytes) -> DeliverSm:
    """data_sm has no short_message (its text is in message_payload) and fewer fields."""
    reader = _BodyReader(body)
    source, destination = _addresses(reader)
    esm_class = reader.octet()
    reader.octet()  # registered_delivery
    data_coding = reader.octet()
    return DeliverSm(source, destination, esm_class, data_coding, b"", reader.tlvs())


def _tlv_cstring(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value.split(b"\x00", 1)[0].decode("latin-1").strip() or None


def _network_error(value: bytes | None) -> str | None:
    """network_error_code is a network type octet and a two-octet code: "<type>:<code>"."""
    if value is None or len(value) != 3:
        return None
    network_type, code = value[0], int.from_bytes(value[1:], "big")
    return f"{network_type}:{code}" if code else None


def _error_code(err: str | None, network_error: str | None) -> str | None:
    if err and err.strip("0"):
        return err
    return network_error


def receipt_from_deliver_sm(
    pdu: DeliverSm,
    *,
    carrier: str,
    submit_id_radix: int | None = None,
    receipt_id_radix: int | None = None,
    zone: tzinfo = UTC,
) -> DeliveryReceipt | None:
    """A DeliveryReceipt from a deliver_sm, or None when it is not a receipt or names no id.

    The receipted_message_id TLV is preferred to the text id; by SMPP 3.4 it is the id the
    SMSC returned in submit_sm_resp, so it is normalised with the submit radix, while the text
    id is normalised with the receipt radix.
    """
    fields = parse_receipt_text(pdu.text)
    if not pdu.looks_like_receipt and not ("id" in fields and "stat" in fields):
        return None
    tlv_id = _tlv_cstring(pdu.tlvs.get(TLV_RECEIPTED_MESSAGE_ID))
    state_octet = pdu.tlvs.get(TLV_MESSAGE_STATE)
    message_state = state_octet[0] if state_octet else None
    network_error = _network_error(pdu.tlvs.get(TLV_NETWORK_ERROR_CODE))
    if tlv_id:
        message_id = normalise_message_id(tlv_id, radix=submit_id_radix)
    else:
        message_id = normalise_message_id(fields.get("id"), radix=receipt_id_radix)
    if not message_id:
        return None
    raw: dict[str, Any] = {
        **fields,
        "receipted_message_id": tlv_id,
        "message_state": message_state,
        "network_error_code": network_error,
        "source_addr": pdu.source_addr,
        "destination_addr": pdu.destination_addr,
        "esm_class": pdu.esm_class,
    }
    done = parse_receipt_date(fields.get("done_date"), zone)
    return DeliveryReceipt(
        carrier=carrier,
        carrier_message_id=message_id,
        status=receipt_status(fields.get("stat"), message_state),
        timestamp=done or datetime.now(UTC),
        error_code=_error_code(fields.get("err"), network_error),
        raw={key: value for key, value in raw.items() if value is not None},
        to_the_minute=done is not None and len(fields.get("done_date", "").strip()) == 10,
    )


# -- PDU encoding (smpplib) -----------------------------------------------------------------


class _Unnumbered:
    """smpplib asks a "client" for sequence numbers; ours are patched in per session."""

    sequence = 0

    def next_sequence(self) -> int:
        return 0


_UNNUMBERED = _Unnumbered()


def encode_pdu(command: str, sequence: int = 0, **fields: Any) -> bytes:
    pdu = smpplib.smpp.make_pdu(command, client=_UNNUMBERED, **fields)
    pdu.sequence = sequence
    return bytes(pdu.generate())


def with_sequence(pdu: bytes, sequence: int) -> bytes:
    return pdu[:12] + sequence.to_bytes(4, "big") + pdu[16:]


def status_code(status: int) -> str:
    return f"SMPP_0x{status:08X}"


def status_message(status: int) -> str:
    description = smpplib.consts.DESCRIPTIONS.get(status, "unknown error")
    return f"{description} (command_status 0x{status:08X})"


def source_address(sender: str) -> tuple[str, int, int]:
    """(address, TON, NPI): international for digits, alphanumeric for anything else."""
    digits = sender[1:] if sender.startswith("+") else sender
    if re.fullmatch(r"[0-9]+", digits):
        return digits, 1, 1
    return sender, 5, 0


# -- configuration ----------------------------------------------------------------------------


def _radix(value: Any) -> int | None:
    if value in (None, "", 0):
        return None
    named = {"dec": 10, "decimal": 10, "hex": 16, "hexadecimal": 16}
    radix = named.get(str(value).lower()) or int(value)
    if radix not in (10, 16):
        raise ValueError(f"message id radix must be 10 or 16, not {value!r}")
    return radix


def _backoff(value: Any) -> tuple[float, float]:
    if isinstance(value, int | float):
        return float(value), max(float(value), 60.0)
    initial, maximum = value
    return float(initial), float(maximum)


@dataclass(frozen=True)
class SmppConfig:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    window: int = 50
    enquire_link_interval: float = 30.0
    submit_timeout: float = 10.0
    reconnect_backoff: tuple[float, float] = (1.0, 60.0)
    concatenation: str = "udh"
    registered_delivery: int = 1  # 0: none, 1: every final state, 2: failures only
    source_ton: int | None = None
    source_npi: int | None = None
    dest_ton: int = 1
    dest_npi: int = 1
    service_type: str = ""
    rate: float = 0.0
    throttle_retries: int = 30
    throttle_backoff: float = 0.25
    max_resubmits: int = 3
    submit_id_radix: int | None = None
    receipt_id_radix: int | None = None
    receipt_timezone: tzinfo = UTC

    @classmethod
    def from_carrier(cls, carrier: BaseCarrier) -> SmppConfig:
        get = carrier.setting
        config = cls(
            host=str(get("HOST")),
            port=int(get("PORT")),
            system_id=str(get("SYSTEM_ID")),
            password=str(get("PASSWORD")),
            system_type=str(get("SYSTEM_TYPE", "")),
            window=max(1, int(get("WINDOW", 50))),
            enquire_link_interval=float(get("ENQUIRE_LINK_INTERVAL", 30.0)),
            submit_timeout=float(get("SUBMIT_TIMEOUT", 10.0)),
            reconnect_backoff=_backoff(get("RECONNECT_BACKOFF", (1.0, 60.0))),
            concatenation=str(get("CONCATENATION", "udh")).lower(),
            registered_delivery=_registered_delivery(get("REGISTERED_DELIVERY", 1)),
            source_ton=_optional_int(get("SOURCE_TON", None)),
            source_npi=_optional_int(get("SOURCE_NPI", None)),
            dest_ton=int(get("DEST_TON", 1)),
            dest_npi=int(get("DEST_NPI", 1)),
            service_type=str(get("SERVICE_TYPE", "")),
            rate=max(0.0, float(get("RATE", 0) or 0)),
            throttle_retries=int(get("THROTTLE_RETRIES", 30)),
            throttle_backoff=float(get("THROTTLE_BACKOFF", 0.25)),
            max_resubmits=int(get("MAX_RESUBMITS", 3)),
            submit_id_radix=_radix(get("SUBMIT_ID_RADIX", None)),
            receipt_id_radix=_radix(get("RECEIPT_ID_RADIX", None)),
            receipt_timezone=ZoneInfo(str(get("RECEIPT_TIMEZONE", "UTC"))),
        )
        if config.concatenation not in ("udh", "sar"):
            raise ValueError(f"CONCATENATION must be 'udh' or 'sar', not {config.concatenation!r}")
        if config.port <= 0 or config.port > 65535:
            raise ValueError(f"PORT must be a TCP port (1-65535), not {config.port}")
        return config


def _registered_delivery(value: Any) -> int:
    """True/False as 1/0 (the older settings), or 0, 1 or 2 as SMPP 3.4 numbers them."""
    if isinstance(value, bool):
        return int(value)
    number = int(value)
    if number not in (0, 1, 2):
        raise ValueError(
            f"REGISTERED_DELIVERY must be 0 (none), 1 (every final state) or 2 (failures "
            f"only), not {value!r}"
        )
    return number


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


# -- submissions ----------------------------------------------------------------------------


@dataclass(eq=False)
class _Part:
    """One submit_sm of one recipient's message, followed until it is settled."""

    job: _Job
    pdu: bytes  # encoded with sequence 0; the session patches its own number in
    batch: _Batch | None = None
    throttled: int = 0
    resubmits: int = 0
    sent_at: float = 0.0
    message_id: str | None = None  # as the SMSC wrote it
    receipt_key: str = ""  # the id normalised, as its receipts will be matched
    accepted_at: datetime | None = None
    error: tuple[str, str, bool] | None = None  # code, message, permanent


@dataclass(eq=False)
class _Job:
    """One recipient: its parts and, once settled, its SubmitResult."""

    sms: OutboundSms
    parts: list[_Part] = field(default_factory=list)
    error: tuple[str, str, bool] | None = None  # a problem found before sending

    def result(self) -> SubmitResult:
        failure = self.error or next((p.error for p in self.parts if p.error), None)
        if failure is None:
            acked = [p for p in self.parts if p.message_id]
            return SubmitResult.ok(
                self.sms,
                *(p.message_id for p in acked if p.message_id),
                receipt_keys=[p.receipt_key for p in acked],
                accepted_at=max((p.accepted_at for p in acked if p.accepted_at), default=None),
            )
        accepted = [p.message_id for p in self.parts if p.message_id]
        if accepted:
            logger.warning(
                "recipient %s: parts %s accepted but another part failed (%s)",
                self.sms.recipient_id,
                accepted,
                failure[0],
            )
        code, message, permanent = failure
        return SubmitResult.rejected(self.sms, code, message, permanent=permanent)


class _Batch:
    """The parts of one ``send_messages`` call that still need the wire. Guarded by the
    carrier's lock."""

    def __init__(self, parts: Iterable[_Part], listener: AcceptedListener | None = None) -> None:
        self.todo: deque[_Part] = deque(parts)
        self.delayed: list[tuple[float, _Part]] = []
        self.unsettled = len(self.todo)
        self.sent_any = False
        self.listener = listener
        self.accepted: list[_Job] = []  # every part acknowledged, not handed to listener yet
        for part in self.todo:
            part.batch = self

    def settle(self) -> None:
        self.unsettled -= 1

    def retry_at(self, when: float, part: _Part) -> None:
        self.delayed.append((when, part))

    def promote(self, now: float) -> float | None:
        """Move due retries to the queue; the time of the next one still waiting."""
        waiting = []
        for when, part in self.delayed:
            if when <= now:
                self.todo.append(part)
            else:
                waiting.append((when, part))
        self.delayed = waiting
        return min((when for when, _ in waiting), default=None)

    def abandon(self, code: str, message: str) -> None:
        """Settle every part not on the wire as a temporary rejection."""
        for part in [*self.todo, *(p for _, p in self.delayed)]:
            part.error = (code, message, False)
            self.unsettled -= 1
        self.todo.clear()
        self.delayed = []


def _batch_of(part: _Part) -> _Batch:
    assert part.batch is not None, "a part on the wire always belongs to a batch"
    return part.batch


# -- sessions ---------------------------------------------------------------------------------


class _Session:
    """One TCP connection and bind. ``pending`` (guarded by the carrier's lock) maps sequence
    numbers of unacknowledged submit_sm to their parts."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending: dict[int, _Part] = {}
        self.alive = True
        self.ended = threading.Event()  # unbind answered, or the connection is gone
        self.last_rx = time.monotonic()
        self.enquire_sent_at: float | None = None
        self._write_lock = threading.Lock()
        self._sequence_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._sequence = 0
        self._buffer = bytearray()
        # PDUs that arrived behind the bind response, in the same read: the session thread
        # takes them first (an SMSC often pushes stored receipts the moment a bind succeeds).
        self._unread: list[bytes] = []

    def next_sequence(self) -> int:
        with self._sequence_lock:
            self._sequence = self._sequence % 0x7FFFFFFF + 1
            return self._sequence

    def send(self, data: bytes) -> bool:
        """Write one PDU; False (and the session aborted) when the connection is gone."""
        if not self.alive:
            return False
        try:
            with self._write_lock:
                self.sock.sendall(data)
        except OSError as exc:
            self.abort(f"write failed: {exc}")
            return False
        return True

    def request(self, command: str, **fields: Any) -> bool:
        return self.send(encode_pdu(command, self.next_sequence(), **fields))

    def respond(self, command: str, sequence: int, status: int = ESME_ROK) -> bool:
        return self.send(encode_pdu(command, sequence, status=status))

    def abort(self, reason: str) -> None:
        with self._state_lock:
            was_alive, self.alive = self.alive, False
        if was_alive:
            logger.info("SMPP session ends: %s", reason)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def read(self, timeout: float) -> list[bytes] | None:
        """Complete PDUs received within ``timeout``; None once the connection has ended."""
        if self._unread:
            frames, self._unread = self._unread, []
            return frames
        try:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return []
            chunk = self.sock.recv(65536)
        except (OSError, ValueError):
            return None
        if not chunk:
            return None
        self.last_rx = time.monotonic()
        self._buffer += chunk
        return self._frames()

    def keep_unread(self, frames: list[bytes]) -> None:
        """Hand ``frames`` to the next ``read``."""
        self._unread.extend(frames)

    def _frames(self) -> list[bytes]:
        frames = []
        while len(self._buffer) >= 4:
            length = int.from_bytes(self._buffer[:4], "big")
            if not 16 <= length <= MAX_PDU_LENGTH:
                raise ProtocolError(f"command_length {length} is out of range")
            if len(self._buffer) < length:
                break
            frames.append(bytes(self._buffer[:length]))
            del self._buffer[:length]
        return frames

    def close(self) -> None:
        self.alive = False
        with contextlib.suppress(OSError):
            self.sock.close()


# -- the carrier ------------------------------------------------------------------------------


_open_carriers: weakref.WeakSet[SmppCarrier] = weakref.WeakSet()


@atexit.register
def _close_open_carriers() -> None:
    # Unbind politely before the interpreter tears down; the threads are daemons, so nothing
    # else would stop them mid-write.
    for carrier in list(_open_carriers):
        try:
            carrier.close()
        except Exception:
            logger.exception("closing SMPP carrier %s at exit failed", carrier.name)


def _forget_sessions_after_fork() -> None:
    for carrier in list(_open_carriers):
        carrier._forget_after_fork()
    _open_carriers.clear()


os.register_at_fork(after_in_child=_forget_sessions_after_fork)


class SmppCarrier(BaseCarrier):
    carrier_name = "smpp"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._config: SmppConfig | None = None
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._lifecycle = threading.Lock()
        self._closing = threading.Event()
        self._session: _Session | None = None
        self._supervisor: threading.Thread | None = None
        self._receipt_worker: _ReceiptWorker | None = None
        self._bind_error: CarrierError | None = None
        self._reference = random.randrange(0x10000)
        self._pause_until = 0.0
        self._next_token = 0.0  # when the rate lets the next submit leave
        self._window_now = 0.0  # the window in use (0: not set yet; shrinks under throttling)
        self._throttled_in_a_row = 0
        self._throttle_reacted_at = 0.0  # when the bind last slowed down for the SMSC

    def _forget_after_fork(self) -> None:
        """In a forked child: the parent's socket is here but none of its threads are. Close
        only this process's copy of the socket (a shutdown would cut the parent's session)
        and start afresh; the next batch binds a session of the child's own."""
        session = self._session
        if session is not None:
            with contextlib.suppress(OSError):
                session.sock.close()
        self._reset()

    @property
    def config(self) -> SmppConfig:
        if self._config is None:
            self._config = SmppConfig.from_carrier(self)
        return self._config

    @property
    def paces_itself(self) -> bool:
        return self.config.rate > 0

    @property
    def is_bound(self) -> bool:
        session = self._session
        return session is not None and session.alive

    # -- lifecycle -----------------------------------------------------------------------

    def open(self) -> None:
        with self._lifecycle:
            if self._supervisor is not None:
                return
            # A fresh event per opening: a session thread that outlived the last close() keeps
            # the old, set one and cannot be revived by this opening.
            self._closing = closing = threading.Event()
            session = self._connect()
            self._receipt_worker = _ReceiptWorker(self)
            with self._lock:
                self._session = session
            self._supervisor = threading.Thread(
                target=self._supervise,
                args=(session, closing),
                name=f"smpp-{self.name}",
                daemon=True,
            )
            self._supervisor.start()
            _open_carriers.add(self)

    def close(self) -> None:
        with self._lifecycle:
            supervisor = self._supervisor
            if supervisor is None:
                return
            self._closing.set()
            with self._changed:
                self._changed.notify_all()
            session = self._session
            if session is not None and session.alive:
                self._drain(session)
            if self._receipt_worker is not None:
                self._receipt_worker.stop()
            if session is not None and session.alive:
                self._unbind(session)
            supervisor.join(timeout=self.config.submit_timeout)
            self._supervisor = None
            self._receipt_worker = None
            self._session = None
            _open_carriers.discard(self)

    def _drain(self, session: _Session) -> None:
        """Give submits already on the wire a moment to be acknowledged."""
        deadline = time.monotonic() + min(self.config.submit_timeout, 5.0)
        with self._changed:
            while session.pending and session.alive and time.monotonic() < deadline:
                self._changed.wait(READ_TICK)

    def _unbind(self, session: _Session) -> None:
        if session.request("unbind"):
            session.ended.wait(min(self.config.submit_timeout, UNBIND_GRACE))
        session.abort("closed")

    # -- connecting ------------------------------------------------------------------------

    def _connect(self) -> _Session:
        config = self.config
        try:
            sock = socket.create_connection(
                (config.host, config.port), timeout=config.submit_timeout
            )
        except OSError as exc:
            raise CarrierError(
                f"cannot reach SMSC {config.host}:{config.port}: {exc}",
                permanent=False,
                code="SMPP_UNREACHABLE",
            ) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        session = _Session(sock)
        try:
            self._bind(session)
        except BaseException:
            session.close()
            raise
        return session

    def _bind(self, session: _Session) -> None:
        config = self.config
        sequence = session.next_sequence()
        bind = encode_pdu(
            "bind_transceiver",
            sequence,
            system_id=config.system_id,
            password=config.password,
            system_type=config.system_type,
        )
        if not session.send(bind):
            raise CarrierError("SMSC closed the connection before bind", code="SMPP_BIND")
        status = self._await_bind_response(session, sequence)
        if status != ESME_ROK:
            raise CarrierError(
                f"bind_transceiver rejected: {status_message(status)}",
                permanent=status in CREDENTIAL_STATUSES,
                code=status_code(status),
            )
        logger.info("bound to SMSC %s:%s as %s", config.host, config.port, config.system_id)

    def _await_bind_response(self, session: _Session, sequence: int) -> int:
        deadline = time.monotonic() + self.config.submit_timeout
        while time.monotonic() < deadline:
            frames = session.read(READ_TICK)
            if frames is None:
                raise CarrierError("SMSC closed the connection during bind", code="SMPP_BIND")
            for index, frame in enumerate(frames):
                _, command, status, seq = HEADER.unpack_from(frame)
                if seq == sequence and command in (BIND_TRANSCEIVER_RESP, GENERIC_NACK):
                    session.keep_unread(frames[index + 1 :])
                    return int(status)
                if command == ENQUIRE_LINK:
                    session.respond("enquire_link_resp", seq)
        raise CarrierError("no bind_transceiver_resp from SMSC", code="SMPP_BIND_TIMEOUT")

    def _supervise(self, session: _Session | None, closing: threading.Event) -> None:
        while session is not None:
            self._serve(session)
            self._session_lost(session)
            session = self._reconnect(closing)

    def _reconnect(self, closing: threading.Event) -> _Session | None:
        delay, maximum = self.config.reconnect_backoff
        while not closing.wait(delay * random.uniform(0.8, 1.2)):
            try:
                session = self._connect()
            except CarrierError as exc:
                logger.warning("SMPP reconnect to %s failed: %s", self.name, exc)
                with self._changed:
                    self._bind_error = exc
                delay = min(delay * 2, maximum)
                continue
            except Exception:
                logger.exception("SMPP reconnect to %s failed", self.name)
                delay = min(delay * 2, maximum)
                continue
            with self._changed:
                if closing.is_set():
                    session.close()
                    return None
                self._session = session
                self._bind_error = None
                self._changed.notify_all()
            return session
        return None

    def _session_lost(self, session: _Session) -> None:
        session.close()
        with self._changed:
            if self._session is session:
                self._session = None
            unacknowledged = list(session.pending.values())
            session.pending.clear()
            for part in unacknowledged:
                self._resubmit(part)
            self._changed.notify_all()
        if unacknowledged:
            logger.warning("SMPP connection lost; %d submits to send again", len(unacknowledged))

    def _resubmit(self, part: _Part) -> None:
        batch = _batch_of(part)
        part.resubmits += 1
        if part.resubmits > self.config.max_resubmits:
            part.error = ("SMPP_CONNECTION_LOST", "connection lost before acknowledgement", False)
            batch.settle()
        else:
            batch.todo.appendleft(part)

    # -- the session thread --------------------------------------------------------------

    def _serve(self, session: _Session) -> None:
        try:
            self._read_until_closed(session)
        except Exception:
            # Never leave senders waiting on a session nobody reads: end it, reconnect.
            logger.exception("SMPP session thread failed")
            session.abort("internal error")
        finally:
            session.ended.set()

    def _read_until_closed(self, session: _Session) -> None:
        while session.alive:
            try:
                frames = session.read(READ_TICK)
            except ProtocolError as exc:
                session.abort(str(exc))
                break
            if frames is None:
                session.abort("closed" if self._closing.is_set() else "connection closed by SMSC")
                break
            for frame in frames:
                self._dispatch(session, frame)
            self._check_timers(session)

    def _dispatch(self, session: _Session, frame: bytes) -> None:
        _, command, status, sequence = HEADER.unpack_from(frame)
        if command == SUBMIT_SM_RESP:
            self._on_submit_resp(session, sequence, status, frame)
        elif command in (DELIVER_SM, DATA_SM):
            worker = self._receipt_worker
            if worker is None:  # closing: let the SMSC deliver it again next time
                session.respond(_RESPONSES[command], sequence, ESME_RX_T_APPN)
            else:
                worker.put(session, sequence, frame[16:], command)
        elif command == ENQUIRE_LINK:
            session.respond("enquire_link_resp", sequence)
        elif command == ENQUIRE_LINK_RESP:
            session.enquire_sent_at = None
        elif command == UNBIND:
            session.respond("unbind_resp", sequence)
            session.abort("SMSC unbound")
        elif command == UNBIND_RESP:
            session.ended.set()
        elif command == GENERIC_NACK:
            self._on_submit_resp(session, sequence, status or ESME_RINVCMDID, None)
        elif not command & RESPONSE_BIT:
            session.respond("generic_nack", sequence, ESME_RINVCMDID)

    def _on_submit_resp(
        self, session: _Session, sequence: int, status: int, frame: bytes | None
    ) -> None:
        message_id = ""
        if frame is not None and status == ESME_ROK:
            message_id = self._submitted_id(frame)
        with self._changed:
            part = session.pending.pop(sequence, None)
            if part is not None:
                self._settle(part, status, message_id)
            self._changed.notify_all()

    def _submitted_id(self, frame: bytes) -> str:
        """The message id as the SMSC wrote it, without its NUL and blanks."""
        try:
            pdu = smpplib.smpp.parse_pdu(frame, client=_UNNUMBERED, allow_unknown_opt_params=True)
        except Exception:
            # Accepted all the same: the SMSC said ESME_ROK, only its receipts cannot match.
            logger.exception("unreadable submit_sm_resp: %s", frame.hex())
            return ""
        value = pdu.message_id
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value or "")
        return text.strip("\x00 \t\r\n")

    def _settle(self, part: _Part, status: int, message_id: str) -> None:
        batch = _batch_of(part)
        config = self.config
        if status == ESME_ROK:
            self._throttled_in_a_row = 0
            window = self._window()
            self._window_now = min(float(config.window), window + 1 / window)
            part.message_id = message_id
            part.receipt_key = normalise_message_id(message_id, radix=config.submit_id_radix)
            part.accepted_at = datetime.now(UTC)
            if batch.listener is not None and all(p.accepted_at for p in part.job.parts):
                batch.accepted.append(part.job)
        elif status in TEMPORARY_STATUSES and part.throttled < config.throttle_retries:
            part.throttled += 1
            now = time.monotonic()
            # The SMSC asked the whole bind to slow down, not just this part. Once per burst:
            # the other refusals of submits sent before this reaction are the same news.
            if part.sent_at > self._throttle_reacted_at:
                self._throttle_reacted_at = now
                self._throttled_in_a_row += 1
                self._window_now = max(1.0, self._window() / 2)
                # Paced binds only overstepped by a hair: pause a couple of intervals.
                base = 2 / config.rate if config.rate else config.throttle_backoff
                delay = min(base * 2 ** min(self._throttled_in_a_row - 1, 10), MAX_THROTTLE_PAUSE)
                self._pause_until = max(self._pause_until, now + delay)
            batch.retry_at(max(self._pause_until, now), part)
            return
        elif status in TEMPORARY_STATUSES:
            retries = f" after {part.throttled} retries"
            part.error = (status_code(status), status_message(status) + retries, False)
        else:
            part.error = (status_code(status), status_message(status), True)
        batch.settle()

    def _check_timers(self, session: _Session) -> None:
        config = self.config
        now = time.monotonic()
        if session.enquire_sent_at is not None:
            if now - session.enquire_sent_at > config.submit_timeout:
                session.abort("enquire_link unanswered")
                return
        elif now - session.last_rx >= config.enquire_link_interval:
            session.enquire_sent_at = now
            session.request("enquire_link")
        with self._lock:
            oldest = next(iter(session.pending.values()), None)
        if oldest is not None and now - oldest.sent_at > config.submit_timeout:
            session.abort("submit_sm_resp overdue")

    # -- sending ---------------------------------------------------------------------------

    def take_inbound(self, pdus: Sequence[DeliverSm]) -> int:
        """Hand messages from phones to ``INBOUND_HANDLER`` (default: ``inbound.store_inbound``);
        the status to answer their PDUs with."""
        if not pdus:
            return ESME_ROK
        try:
            import_string(self.setting("INBOUND_HANDLER", INBOUND_HANDLER))(self.name, pdus)
        except Exception:
            logger.exception("inbound sink failed; asking the SMSC to redeliver %d", len(pdus))
            return ESME_RX_T_APPN
        return ESME_ROK

    def build_payload(self, batch: Sequence[OutboundSms]) -> list[_Job]:
        return [self._job(sms) for sms in batch]

    def post_to_carrier(self, payload: Any, batch: Sequence[OutboundSms]) -> list[SubmitResult]:
        return self._post(payload, None)

    def post_streaming(
        self, payload: Any, batch: Sequence[OutboundSms], on_accepted: AcceptedListener
    ) -> list[SubmitResult]:
        return self._post(payload, on_accepted)

    def _post(self, jobs: list[_Job], listener: AcceptedListener | None) -> list[SubmitResult]:
        parts = [part for job in jobs if job.error is None for part in job.parts]
        if parts:
            self._submit(_Batch(parts, listener))
        return [job.result() for job in jobs]

    def parse_recipient_status(
        self, response: Any, batch: Sequence[OutboundSms]
    ) -> list[SubmitResult]:
        results: list[SubmitResult] = response
        return results

    def _job(self, sms: OutboundSms) -> _Job:
        job = _Job(sms)
        info = analyze(sms.text)
        if info.segments > MAX_PARTS:
            job.error = ("SMPP_TOO_LONG", f"{info.segments} parts exceed {MAX_PARTS}", True)
            return job
        encode = encode_gsm7 if info.encoding == GSM7 else encode_ucs2
        data_coding = DATA_CODING_DEFAULT if info.encoding == GSM7 else DATA_CODING_UCS2
        bodies = [encode(text) for text in split_parts(sms.text)]
        fields = self._address_fields(sms) | {"data_coding": data_coding}
        if len(bodies) == 1:
            job.parts.append(_Part(job, encode_pdu("submit_sm", short_message=bodies[0], **fields)))
            return job
        reference = self._next_reference()
        for number, body in enumerate(bodies, start=1):
            part_fields = self._concatenation(reference, len(bodies), number, body)
            job.parts.append(_Part(job, encode_pdu("submit_sm", **(fields | part_fields))))
        return job

    def _address_fields(self, sms: OutboundSms) -> dict[str, Any]:
        config = self.config
        source, ton, npi = source_address(sms.sender_id)
        return {
            "service_type": config.service_type,
            "source_addr_ton": ton if config.source_ton is None else config.source_ton,
            "source_addr_npi": npi if config.source_npi is None else config.source_npi,
            "source_addr": source,
            "dest_addr_ton": config.dest_ton,
            "dest_addr_npi": config.dest_npi,
            "destination_addr": sms.to.lstrip("+"),
            "esm_class": 0,
            "registered_delivery": config.registered_delivery,
        }

    def _concatenation(
        self, reference: int, total: int, number: int, body: bytes
    ) -> dict[str, Any]:
        if self.config.concatenation == "sar":
            return {
                "short_message": body,
                "sar_msg_ref_num": reference,
                "sar_total_segments": total,
                "sar_segment_seqnum": number,
            }
        # Concatenated-SM information element 0x00: 8-bit reference, part count, part number.
        header = bytes((0x05, 0x00, 0x03, reference & 0xFF, total, number))
        return {"short_message": header + body, "esm_class": ESM_CLASS_UDHI}

    def _next_reference(self) -> int:
        with self._lock:
            self._reference = (self._reference + 1) % 0x10000
            return self._reference

    def _submit(self, batch: _Batch) -> None:
        """Put the batch on the wire; on this (the caller's) thread, hand recipients accepted
        in full to the batch's listener at most ``FLUSH_EVERY`` after their last
        acknowledgement (the rest of the batch stays in flight meanwhile)."""
        unbound_since: float | None = None
        flushed_at = 0.0
        while True:
            ready: list[_Job] = []
            with self._changed:
                if batch.unsettled == 0:
                    return
                now = time.monotonic()
                if batch.accepted and now - flushed_at >= FLUSH_EVERY:
                    ready, batch.accepted = batch.accepted, []
                else:
                    session = self._session if self.is_bound else None
                    unbound_since = None if session else (unbound_since or now)
                    step = self._next_step(batch, session, now, unbound_since)
                    if isinstance(step, float):
                        if batch.accepted:
                            step = min(step, max(0.0, flushed_at + FLUSH_EVERY - now))
                        self._changed.wait(step)
                        continue
            if ready:
                assert batch.listener is not None
                flushed_at = now
                batch.listener([job.result() for job in ready])
                continue
            assert not isinstance(step, float)
            session, pdu = step
            # A failed write aborts the session; the session thread then hands the part back.
            session.send(pdu)

    def _next_step(
        self, batch: _Batch, session: _Session | None, now: float, unbound_since: float | None
    ) -> float | tuple[_Session, bytes]:
        """Under the lock: a part to put on the wire, or how long to wait for news."""
        next_retry = batch.promote(now)
        if self._closing.is_set():
            batch.abandon("SMPP_CLOSED", "carrier closed before submission")
            return READ_TICK
        if session is None:
            assert unbound_since is not None
            return self._wait_for_bind(batch, now - unbound_since)
        if not batch.todo or len(session.pending) >= int(self._window()):
            return _wait_until(now, next_retry)
        if now < self._pause_until:
            return _wait_until(now, self._pause_until)
        rate = self.config.rate
        if rate:
            if now < self._next_token:
                return _wait_until(now, self._next_token)
            # On a grid 1/RATE apart, kept from batch to batch, so waits that overslept are
            # made up; nothing saved up beyond one interval, so no burst for the SMSC to
            # refuse (an SMSC counting any sliding second refuses whatever exceeds RATE in
            # it, so a gap is never made up: the bind must not idle between batches).
            self._next_token = max(self._next_token, now - 1 / rate) + 1 / rate
        part = batch.todo.popleft()
        sequence = session.next_sequence()
        session.pending[sequence] = part
        part.sent_at = now
        batch.sent_any = True
        return session, with_sequence(part.pdu, sequence)

    def _window(self) -> float:
        """The window in use: WINDOW until throttling shrinks it."""
        return self._window_now or float(self.config.window)

    def _wait_for_bind(self, batch: _Batch, unbound_for: float) -> float:
        timeout = self.config.submit_timeout
        if unbound_for < timeout:
            return min(timeout - unbound_for, READ_TICK)
        error = self._bind_error
        if not batch.sent_any:
            raise error or CarrierError(
                f"not bound to SMSC within {timeout:g}s", permanent=False, code="SMPP_UNBOUND"
            )
        detail = f": {error}" if error else ""
        batch.abandon("SMPP_UNBOUND", f"not bound to SMSC within {timeout:g}s{detail}")
        return READ_TICK


def _wait_until(now: float, when: float | None) -> float:
    if when is None:
        return READ_TICK
    return max(0.0, min(when - now, READ_TICK))


# -- receipts -------------------------------------------------------------------------------


_STOP = object()


class _ReceiptWorker:
    """Turns deliver_sm into receipts for the sink, then answers them (see module docstring)."""

    BATCH = 500
    LINGER = 0.05  # seconds a first receipt waits for others to join its batch

    def __init__(self, carrier: SmppCarrier) -> None:
        self.carrier = carrier
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(
            target=self._run, name=f"smpp-{carrier.name}-receipts", daemon=True
        )
        self.thread.start()

    def put(self, session: _Session, sequence: int, body: bytes, command: int = DELIVER_SM) -> None:
        self.queue.put((session, sequence, body, command))

    def stop(self) -> None:
        self.queue.put(_STOP)
        self.thread.join(timeout=self.carrier.config.submit_timeout)

    def _run(self) -> None:
        running = True
        while running:
            items = [self.queue.get()]
            # Receipts of a paced bind trickle in: wait a moment for company, so the sink
            # gets batches rather than one task per receipt.
            until = time.monotonic() + self.LINGER
            while len(items) < self.BATCH and items[-1] is not _STOP:
                try:
                    items.append(self.queue.get(timeout=max(0.0, until - time.monotonic())))
                except queue.Empty:
                    break
            running = _STOP not in items
            try:
                self._handle([item for item in items if item is not _STOP])
            except Exception:
                # Unanswered deliver_sm are redelivered by the SMSC; the worker must live on.
                logger.exception("receipt handling failed")
        # The inbound sink stores from this thread: its database connection ends with it.
        connections.close_all()

    def _handle(self, items: list[tuple[_Session, int, bytes, int]]) -> None:
        decoded = [self._receipt(body, command) for _, _, body, command in items]
        found = [receipt for _, receipt in decoded if receipt is not None]
        status = ESME_ROK
        try:
            self.carrier.emit_receipts(found)
        except Exception:
            logger.exception("receipt sink failed; asking the SMSC to redeliver %d", len(found))
            status = ESME_RX_T_APPN
        # Messages from phones: answered only once the inbound sink stored them.
        inbound = [pdu for pdu, receipt in decoded if pdu is not None and receipt is None]
        inbound_status = self.carrier.take_inbound(inbound)
        for (session, sequence, _, command), (pdu, receipt) in zip(items, decoded, strict=True):
            answer = status if receipt is not None else inbound_status if pdu else ESME_ROK
            session.respond(_RESPONSES[command], sequence, answer)

    def _receipt(
        self, body: bytes, command: int
    ) -> tuple[DeliverSm | None, DeliveryReceipt | None]:
        config = self.carrier.config
        try:
            pdu = decode_deliver_sm(body) if command == DELIVER_SM else decode_data_sm(body)
            receipt = receipt_from_deliver_sm(
                pdu,
                carrier=self.carrier.name,
                submit_id_radix=config.submit_id_radix,
                receipt_id_radix=config.receipt_id_radix,
                zone=config.receipt_timezone,
            )
        except Exception:
            # Answered all the same: a PDU we cannot read would only come back forever.
            logger.exception("unreadable deliver_sm: %s", body.hex())
            return None, None
        return pdu, receipt


_RESPONSES = {DELIVER_SM: "deliver_sm_resp", DATA_SM: "data_sm_resp"}
