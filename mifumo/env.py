"""Small typed readers for configuration from the environment.

Every value may also come from a file named by ``<NAME>_FILE`` (Docker secrets).
"""

from __future__ import annotations

import ipaddress
import math
import os
from decimal import Decimal, InvalidOperation

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def env(name: str, default: str | None = None) -> str | None:
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        with open(file_name, encoding="utf-8") as fh:
            return fh.read().strip()
    return os.environ.get(name, default)


def envstr(name: str, default: str) -> str:
    value = env(name)
    return default if value is None else value


def envbool(name: str, default: bool) -> bool:
    value = env(name)
    return default if value is None else as_bool(name, value)


def as_bool(name: str, value: str) -> bool:
    """``value`` of the variable ``name`` read as a boolean, or ImproperlyConfigured."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def envint(name: str, default: int) -> int:
    value = env(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def envfloat(name: str, default: float) -> float:
    """A finite number (seconds, a ratio); ImproperlyConfigured names the variable."""
    value = env(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}")
    return number


def envints(name: str, default: list[int]) -> list[int]:
    """Whole numbers separated by commas; ImproperlyConfigured names the variable."""
    items = envlist(name, [str(item) for item in default])
    try:
        return [int(item) for item in items]
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be whole numbers separated by commas, got {env(name)!r}"
        ) from None


def envmoney(name: str, default: str) -> Decimal:
    """An amount of money: more than zero, at most two decimal places, as a price column
    holds it (up to 99,999,999.99); ImproperlyConfigured otherwise."""
    value = env(name)
    text = default if value is None or value.strip() == "" else value.strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = Decimal("NaN")
    if (
        not amount.is_finite()
        or not Decimal("0") < amount < Decimal("100000000")
        or (amount != amount.quantize(Decimal("0.01")))
    ):
        raise ImproperlyConfigured(
            f"{name} must be an amount above 0 with at most two decimal places, such as "
            f"10.00, got {text!r}"
        )
    return amount.quantize(Decimal("0.01"))


def envfernet(name: str) -> str | None:
    """A Fernet key (32 url-safe base64-encoded bytes, as ``Fernet.generate_key()`` makes),
    or None when unset; ImproperlyConfigured for anything else, at start rather than at the
    first encryption."""
    value = env(name)
    if value is None or value.strip() == "":
        return None
    try:
        Fernet(value.strip().encode())
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be a Fernet key, 32 url-safe base64-encoded bytes (python -c "
            '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")'
        ) from None
    return value.strip()


def envlist(name: str, default: list[str]) -> list[str]:
    value = env(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def as_networks(name: str, value: str) -> tuple[Network, ...]:
    """The IP networks of the variable ``name``: comma-separated addresses or networks in CIDR
    notation (``10.0.0.0/8``, ``2001:db8::/32``); ImproperlyConfigured names an entry that is
    neither, or a network written with host bits set (``10.0.0.1/8``)."""
    networks: list[Network] = []
    for entry in value.split(","):
        text = entry.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name} must be IP networks such as 10.0.0.0/8, separated by commas;"
                f" {text!r} is not one ({exc})"
            ) from None
    return tuple(networks)
