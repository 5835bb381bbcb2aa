"""Mobile-originated SMPP messages: deliver_sm without the receipt bits, and data_sm.

Decoding only; the carrier answers each PDU after the inbound sink has stored it. Handles
the concatenation schemes phones and SMSCs use (a UDH with an 8- or 16-bit reference, or
the sar_ TLVs), text in message_payload instead of short_message, and the GSM 03.38
default alphabet (unpacked, one septet per octet), IA5/ASCII, Latin-1 and UCS-2 codings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.db import close_old_connections

from sms.carriers.inbound import Concatenation, InboundSms, inbound_sink
from sms.carriers.smpp.codec import (
    ESM_CLASS_UDHI,
    TLV_MESSAGE_PAYLOAD,
    TLV_SAR_MSG_REF_NUM,
    TLV_SAR_SEGMENT_SEQNUM,
    TLV_SAR_TOTAL_SEGMENTS,
    DeliverSm,
    ProtocolError,
)
from sms.encoding import decode_gsm7

IEI_CONCAT_8BIT = 0x00
IEI_CONCAT_16BIT = 0x08

DC_DEFAULT = 0x00
DC_IA5 = 0x01
DC_BINARY = 0x02
DC_LATIN1 = 0x03
DC_BINARY_8BIT = 0x04
DC_UCS2 = 0x08

logger = logging.getLogger(__name__)


def decode_text(payload: bytes, data_coding: int) -> str:
    """The text of ``payload`` in ``data_coding`` (SMPP 3.4, 5.2.19). GSM default alphabet
    text that is not valid septets (an SMSC that sends Latin-1 under 0x00) is read as
    Latin-1 rather than lost."""
    coding = data_coding
    if coding & 0xF0 == 0xF0:  # GSM 03.38 message class coding group
        coding = DC_BINARY_8BIT if coding & 0x04 else DC_DEFAULT
    if coding == DC_UCS2:
        return payload.decode("utf-16-be", "replace")
    if coding in (DC_DEFAULT, DC_IA5):
        try:
            return decode_gsm7(payload)
        except ValueError:
            return payload.decode("latin-1")
    return payload.decode("latin-1")


def split_udh(message: bytes) -> tuple[Concatenation | None, bytes]:
    """The concatenation information element of a user data header, and the text after the
    header. Other information elements are skipped."""
    if not message:
        raise ProtocolError("UDHI set on an empty message")
    length = message[0]
    header, rest = message[1 : 1 + length], message[1 + length :]
    if len(header) != length:
        raise ProtocolError("user data header longer than the message")
    found: Concatenation | None = None
    pos = 0
    while pos + 2 <= len(header):
        iei, size = header[pos], header[pos + 1]
        data = header[pos + 2 : pos + 2 + size]
        if iei == IEI_CONCAT_8BIT and size == 3:
            found = Concatenation(reference=data[0], total=data[1], part=data[2])
        elif iei == IEI_CONCAT_16BIT and size == 4:
            found = Concatenation(
                reference=int.from_bytes(data[:2], "big"), total=data[2], part=data[3]
            )
        pos += 2 + size
    return found, rest


def _sar(pdu: DeliverSm) -> Concatenation | None:
    tlvs = pdu.tlvs
    if TLV_SAR_MSG_REF_NUM not in tlvs:
        return None
    try:
        return Concatenation(
            reference=int.from_bytes(tlvs[TLV_SAR_MSG_REF_NUM], "big"),
            total=tlvs[TLV_SAR_TOTAL_SEGMENTS][0],
            part=tlvs[TLV_SAR_SEGMENT_SEQNUM][0],
        )
    except (KeyError, IndexError):
        raise ProtocolError("incomplete sar_ TLVs") from None


def inbound_from_pdu(pdu: DeliverSm, *, carrier: str) -> InboundSms:
    """One inbound message, or one part of it."""
    payload = pdu.short_message or pdu.tlvs.get(TLV_MESSAGE_PAYLOAD, b"")
    concatenation = _sar(pdu)
    if pdu.esm_class & ESM_CLASS_UDHI:
        from_udh, payload = split_udh(payload)
        concatenation = concatenation or from_udh
    if concatenation is not None and not (
        concatenation.total > 1 and 1 <= concatenation.part <= concatenation.total
    ):
        concatenation = None  # "part 1 of 1", or numbers no phone sends: a whole message
    raw: dict[str, Any] = {
        "source_addr": pdu.source_addr,
        "destination_addr": pdu.destination_addr,
        "esm_class": pdu.esm_class,
        "data_coding": pdu.data_coding,
    }
    return InboundSms(
        carrier=carrier,
        sender=pdu.source_addr,
        destination=pdu.destination_addr,
        text=decode_text(payload, pdu.data_coding),
        concatenation=concatenation,
        raw=raw,
    )


def store_inbound(carrier: str, pdus: Sequence[DeliverSm]) -> None:
    """The SMPP carrier's inbound handler: decode, then store through the inbound sink
    (which raises when it cannot, and the carrier then asks the SMSC to redeliver). A PDU
    whose header cannot be read is stored with its text as it came, never dropped."""
    items: list[InboundSms] = []
    for pdu in pdus:
        try:
            items.append(inbound_from_pdu(pdu, carrier=carrier))
        except ProtocolError as exc:
            logger.warning("unreadable MO from %s stored as it came: %s", pdu.source_addr, exc)
            payload = pdu.short_message or pdu.tlvs.get(TLV_MESSAGE_PAYLOAD, b"")
            items.append(
                InboundSms(
                    carrier=carrier,
                    sender=pdu.source_addr,
                    destination=pdu.destination_addr,
                    text=payload.decode("latin-1"),
                    raw={"unreadable": str(exc), "hex": payload.hex()},
                )
            )
    # The carrier's receipt thread lives as long as the bind: drop a connection the
    # database closed meanwhile (as run_smpp's pumps do).
    close_old_connections()
    inbound_sink()(items)
