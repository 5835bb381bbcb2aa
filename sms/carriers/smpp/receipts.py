"""Receipts and messages from phones arriving over an SMPP bind.

What a deliver_sm (or data_sm) says: message ids compared the way the SMSC means them
(``normalise_message_id``), the Appendix B receipt text, the receipt TLVs, and the
``DeliveryReceipt`` made of them. And the thread that takes them off the session
(``ReceiptWorker``): it hands receipts to the carrier's sink in batches and messages from phones
to its inbound handler, and only then answers each PDU, so whatever could not be stored is
redelivered by the SMSC.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from django.db import connections

from sms.carriers.base import DeliveryReceipt, DeliveryStatus
from sms.carriers.smpp.codec import (
    DELIVER_SM,
    DELIVERY_RESPONSES,
    ESME_ROK,
    ESME_RX_T_APPN,
    TLV_MESSAGE_STATE,
    TLV_NETWORK_ERROR_CODE,
    TLV_RECEIPTED_MESSAGE_ID,
    DeliverSm,
    decode_data_sm,
    decode_deliver_sm,
)
from sms.carriers.smpp.config import SmppConfig
from sms.carriers.smpp.session import Session

logger = logging.getLogger(__name__)

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


# -- the receipt thread ---------------------------------------------------------------------


class ReceivingCarrier(Protocol):
    """What the receipt thread needs of its carrier."""

    name: str

    @property
    def config(self) -> SmppConfig: ...

    def emit_receipts(self, receipts: Sequence[DeliveryReceipt]) -> None: ...

    def take_inbound(self, pdus: Sequence[DeliverSm]) -> int: ...


_STOP = object()


class ReceiptWorker:
    """Turns deliver_sm into receipts for the sink, then answers them (see module docstring)."""

    BATCH = 500
    LINGER = 0.05  # seconds a first receipt waits for others to join its batch

    def __init__(self, carrier: ReceivingCarrier) -> None:
        self.carrier = carrier
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(
            target=self._run, name=f"smpp-{carrier.name}-receipts", daemon=True
        )
        self.thread.start()

    def put(self, session: Session, sequence: int, body: bytes, command: int = DELIVER_SM) -> None:
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

    def _handle(self, items: list[tuple[Session, int, bytes, int]]) -> None:
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
            session.respond(DELIVERY_RESPONSES[command], sequence, answer)

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
