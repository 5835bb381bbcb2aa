"""System checks for the carrier configuration, without opening any network connection.

Every carrier in ``MIFUMO_CARRIERS`` must name an importable backend whose options are
complete; ``MIFUMO_CARRIER`` (the default route) and the simulator (used by test keys) must be
configured; and, when the checks run with database access (``check --database default``,
``migrate``), every active route must name configured carriers only. Each error names the
exact setting to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import DatabaseError
from django.utils.module_loading import import_string

from sms.carriers import build_carrier
from sms.carriers.base import BaseCarrier, DeliveryReceipt
from sms.models import CarrierRoute

SIMULATOR = "simulator"


def register_checks() -> None:
    checks.register(check_carriers, "mifumo")
    checks.register(check_routes, "mifumo", checks.Tags.database)


def _discard(receipts: Sequence[DeliveryReceipt]) -> None:
    """A receipt sink for carriers built only to be inspected."""


def _error(message: str, number: int, hint: str | None = None) -> checks.Error:
    return checks.Error(message, hint=hint, id=f"sms.E{number:03d}")


def check_carriers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    carriers = getattr(settings, "MIFUMO_CARRIERS", None)
    if not isinstance(carriers, dict) or not carriers:
        return [_error("settings.MIFUMO_CARRIERS must be a non-empty dict of carriers", 1)]
    errors: list[checks.CheckMessage] = []
    for name, config in carriers.items():
        errors.extend(_check_carrier(str(name), config))
    default = getattr(settings, "MIFUMO_CARRIER", None)
    if default not in carriers:
        errors.append(
            _error(
                f"settings.MIFUMO_CARRIER = {default!r} is not in MIFUMO_CARRIERS",
                10,
                hint=f"Configured carriers: {', '.join(sorted(carriers))}",
            )
        )
    if SIMULATOR not in carriers:
        errors.append(
            _error(
                f"MIFUMO_CARRIERS[{SIMULATOR!r}] is missing; test keys always use it",
                11,
            )
        )
    return errors


def _check_carrier(name: str, config: Any) -> list[checks.CheckMessage]:
    setting = f"MIFUMO_CARRIERS[{name!r}]"
    if not isinstance(config, dict):
        return [_error(f"{setting} must be a dict of options", 2)]
    options = {str(key).upper(): value for key, value in config.items()}
    if options.get("DEFINED_BY"):
        setting = f"{options['DEFINED_BY']} bind {name!r}"
    backend = options.get("BACKEND")
    if not backend:
        return [_error(f"{setting}['BACKEND'] is required", 3)]
    try:
        backend_class = import_string(str(backend))
    except ImportError as exc:
        return [_error(f"{setting}['BACKEND'] = {backend!r} cannot be imported: {exc}", 4)]
    if not (isinstance(backend_class, type) and issubclass(backend_class, BaseCarrier)):
        return [_error(f"{setting}['BACKEND'] = {backend!r} is not a carrier backend", 5)]
    errors: list[checks.CheckMessage] = []
    rate: Any = options.get("RATE")
    if rate not in (None, "", 0):
        try:
            valid_rate = int(rate) > 0
        except (TypeError, ValueError):
            valid_rate = False
        if not valid_rate:
            errors.append(
                _error(f"{setting}['RATE'] = {rate!r} must be a positive whole number", 8)
            )
    routes: Any = options.get("ROUTES")
    if routes is not None and (
        not isinstance(routes, list | tuple)
        or not all(str(prefix).lstrip("+").isdigit() for prefix in routes)
    ):
        errors.append(
            _error(
                f"{setting}['ROUTES'] = {routes!r} must be a list of number prefixes",
                14,
                hint='E.164 digits without "+", e.g. ["25575", "25576"]',
            )
        )
    try:
        carrier = build_carrier(name, receipt_sink=_discard)
        _validate_options(carrier)
    except Exception as exc:  # noqa: BLE001 - every configuration problem is reported
        errors.append(_error(f"{setting}: {exc}", 6))
    return errors


def _validate_options(carrier: BaseCarrier) -> None:
    """Read every option the backend needs, the way it will when it sends, but offline."""
    hook = getattr(carrier, "check_options", None)
    if callable(hook):
        hook()
        return
    # The SMPP backend parses its options into ``config``; HTTP backends read credentials
    # when they build the client's authentication and headers.
    for attribute in ("config", "base_url", "timeout"):
        if hasattr(type(carrier), attribute):
            getattr(carrier, attribute)
    for method in ("auth", "headers"):
        function = getattr(carrier, method, None)
        if callable(function):
            function()


def check_routes(
    app_configs: Any = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    if not databases:
        return []
    carriers = getattr(settings, "MIFUMO_CARRIERS", None) or {}
    errors: list[checks.CheckMessage] = []
    try:
        routes = list(CarrierRoute.objects.filter(active=True))
    except DatabaseError:
        return []  # not migrated yet: nothing to route
    for route in routes:
        names = route.carrier_names
        if not names:
            errors.append(_error(f"Carrier route +{route.prefix} names no carrier", 12))
        for name in names:
            if name not in carriers:
                errors.append(
                    _error(
                        f"Carrier route +{route.prefix} names {name!r}, which is not in "
                        "settings.MIFUMO_CARRIERS",
                        13,
                        hint="Configure the carrier or edit the route in the admin",
                    )
                )
    return errors
