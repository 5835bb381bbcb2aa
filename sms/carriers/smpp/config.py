"""The options of an SMPP bind, read once from the carrier's settings into ``SmppConfig``.

Options (``MIFUMO_CARRIERS[name]``): HOST, PORT, SYSTEM_ID, PASSWORD (required); SYSTEM_TYPE
(""), WINDOW (50), ENQUIRE_LINK_INTERVAL (30 s), SUBMIT_TIMEOUT (10 s), RECONNECT_BACKOFF
((1, 60) s, initial and max), CONCATENATION ("udh" or "sar"), REGISTERED_DELIVERY (1; 2 asks
for receipts of failures only, as some gateways want; 0 none),
SOURCE_TON / SOURCE_NPI (default: 5/0 for an alphanumeric sender, 1/1 for a numeric one),
DEST_TON / DEST_NPI (1/1), SERVICE_TYPE (""), RATE (submits per second on this bind, 0: as fast
as the window allows), THROTTLE_RETRIES (30), THROTTLE_BACKOFF (0.25 s),
MAX_RESUBMITS (3), SUBMIT_ID_RADIX / RECEIPT_ID_RADIX (see ``receipts.normalise_message_id``),
RECEIPT_TIMEZONE ("UTC", the zone of the dates written in receipt texts). INBOUND_HANDLER is
read by the carrier when a message from a phone arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sms.carriers.base import BaseCarrier


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
