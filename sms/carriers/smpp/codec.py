"""SMPP 3.4 on the wire: command ids, statuses and TLV tags, framing, and the PDUs the carrier
encodes (with smpplib) or decodes itself (deliver_sm and data_sm, see ``DeliverSm``).

Nothing here holds state or does I/O: the session writes and reads what this module makes and
reads.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import smpplib.consts
import smpplib.smpp

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
TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F
TLV_NETWORK_ERROR_CODE = 0x0423
TLV_MESSAGE_PAYLOAD = 0x0424
TLV_MESSAGE_STATE = 0x0427

# What a deliver_sm or data_sm is answered with.
DELIVERY_RESPONSES = {DELIVER_SM: "deliver_sm_resp", DATA_SM: "data_sm_resp"}

HEADER = struct.Struct(">LLLL")
MAX_PDU_LENGTH = 64 * 1024
MAX_PARTS = 255  # a concatenation header counts parts in one octet


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


def submitted_message_id(frame: bytes) -> str:
    """The message id of a submit_sm_resp as the SMSC wrote it, without its NUL and blanks."""
    try:
        pdu = smpplib.smpp.parse_pdu(frame, client=_UNNUMBERED, allow_unknown_opt_params=True)
    except Exception:
        # Accepted all the same: the SMSC said ESME_ROK, only its receipts cannot match.
        logger.exception("unreadable submit_sm_resp: %s", frame.hex())
        return ""
    value = pdu.message_id
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value or "")
    return text.strip("\x00 \t\r\n")
