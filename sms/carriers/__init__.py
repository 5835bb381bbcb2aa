"""Carrier backends, configured in ``settings.MIFUMO_CARRIERS`` by name:

    MIFUMO_CARRIERS = {"simulator": {"BACKEND": "sms.carriers.simulator.SimulatorCarrier", ...}}

``get_carrier(name)`` returns one opened instance per process and name.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from sms.carriers.base import BaseCarrier, ReceiptSink

_instances: dict[str, BaseCarrier] = {}
_lock = threading.Lock()


def carrier_config(name: str) -> dict[str, Any]:
    config = settings.MIFUMO_CARRIERS.get(name)
    if config is None:
        raise ImproperlyConfigured(
            f"Carrier {name!r} is not configured; MIFUMO_CARRIERS has "
            f"{sorted(settings.MIFUMO_CARRIERS)}"
        )
    if "BACKEND" not in config:
        raise ImproperlyConfigured(f"MIFUMO_CARRIERS[{name!r}]['BACKEND'] is required")
    return dict(config)


def build_carrier(name: str, receipt_sink: ReceiptSink | None = None) -> BaseCarrier:
    config = carrier_config(name)
    backend = import_string(config.pop("BACKEND"))
    options = {key.upper(): value for key, value in config.items()}
    if receipt_sink is None:
        from sms.receipts import enqueue_receipts

        receipt_sink = enqueue_receipts
    carrier: BaseCarrier = backend(name=name, options=options, receipt_sink=receipt_sink)
    return carrier


def get_carrier(name: str) -> BaseCarrier:
    with _lock:
        carrier = _instances.get(name)
        if carrier is None:
            carrier = _instances[name] = build_carrier(name)
        return carrier


def reset_carriers() -> None:
    """Close and forget every carrier instance (tests, settings changes)."""
    with _lock:
        for carrier in _instances.values():
            carrier.close()
        _instances.clear()
