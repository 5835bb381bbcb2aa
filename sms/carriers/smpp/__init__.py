"""The SMPP 3.4 carrier, ``sms.carriers.smpp.SmppCarrier``: the carrier itself in ``carrier``,
messages from phones (the default ``INBOUND_HANDLER``) in ``inbound``."""

from sms.carriers.smpp.carrier import (
    DeliverSm,
    ProtocolError,
    SmppCarrier,
    SmppConfig,
    normalise_message_id,
    parse_receipt_date,
    parse_receipt_text,
    receipt_from_deliver_sm,
    receipt_status,
    source_address,
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
