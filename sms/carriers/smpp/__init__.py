"""The SMPP 3.4 carrier, ``sms.carriers.smpp.SmppCarrier``, and what it is made of:

* ``carrier``: ``SmppCarrier``, the bind's lifecycle, its threads and the submit loop;
* ``config``: the options of a bind (``SmppConfig``);
* ``codec``: constants, framing, PDU encoding and decoding;
* ``submissions``: one recipient's message as submit_sm parts, and their settlement;
* ``session``: one connection, its window of unacknowledged submits, and the bind's pacing;
* ``receipts``: message ids, receipts and the thread that takes deliver_sm off the wire;
* ``inbound``: messages from phones (the default ``INBOUND_HANDLER``).
"""

from sms.carriers.smpp.carrier import SmppCarrier
from sms.carriers.smpp.codec import DeliverSm, ProtocolError, source_address
from sms.carriers.smpp.config import SmppConfig
from sms.carriers.smpp.receipts import (
    normalise_message_id,
    parse_receipt_date,
    parse_receipt_text,
    receipt_from_deliver_sm,
    receipt_status,
)

__all__ = [
    "DeliverSm",
    "ProtocolError",
    "SmppCarrier",
    "SmppConfig",
    "normalise_message_id",
    "parse_receipt_date",
    "parse_receipt_text",
    "receipt_from_deliver_sm",
    "receipt_status",
    "source_address",
]
