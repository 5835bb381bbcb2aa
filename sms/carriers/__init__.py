"""Carrier backends, configured in ``settings.MIFUMO_CARRIERS`` by name:

    MIFUMO_CARRIERS = {"simulator": {"BACKEND": "sms.carriers.simulator.SimulatorCarrier", ...}}

Option names may be written in any case; ``carrier_options`` and ``carrier_config`` read them in
upper case, as every carrier does. ``get_carrier(name)`` returns one opened instance per
process and name; its receipts go to ``settings.MIFUMO_RECEIPT_SINK``. What happens to carriers
at a fork and at exit is ``registry``'s business.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from sms.carriers.base import BaseCarrier, ReceiptSink, normalise_options

_instances: dict[str, BaseCarrier] = {}
_lock = threading.Lock()


def carrier_options(name: str) -> dict[str, Any]:
    """The options of carrier ``name`` as configured, keys in upper case; empty when it is not
    configured."""
    return normalise_options(settings.MIFUMO_CARRIERS.get(name) or {})


def carrier_config(name: str) -> dict[str, Any]:
    """``carrier_options`` of a carrier that must be configured, with its BACKEND."""
    config = settings.MIFUMO_CARRIERS.get(name)
    if config is None:
        raise ImproperlyConfigured(
            f"Carrier {name!r} is not configured; MIFUMO_CARRIERS has "
            f"{sorted(settings.MIFUMO_CARRIERS)}"
        )
    options = normalise_options(config)
    if "BACKEND" not in options:
        raise ImproperlyConfigured(f"MIFUMO_CARRIERS[{name!r}]['BACKEND'] is required")
    return options


def configured_receipt_sink() -> ReceiptSink:
    """Where carriers hand their receipts: ``settings.MIFUMO_RECEIPT_SINK``, a dotted path."""
    sink: ReceiptSink = import_string(settings.MIFUMO_RECEIPT_SINK)
    return sink


def build_carrier(name: str, receipt_sink: ReceiptSink | None = None) -> BaseCarrier:
    options = carrier_config(name)
    backend = import_string(options.pop("BACKEND"))
    if receipt_sink is None:
        receipt_sink = configured_receipt_sink()
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
