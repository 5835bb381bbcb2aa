"""JSON values from the API -> the typed values of ``models`` (and back for requests).

The response JSON is read with ``parse_float=Decimal``, so money arrives exact; a field typed
``float`` gets a float. Times are ISO 8601 with ``Z`` and become aware datetimes. Keys the
client does not know are ignored, so a newer server does not break an older client.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

T = TypeVar("T")
CENT = Decimal("0.01")
Converter = Callable[[Any], Any]


class ConversionError(ValueError):
    """A value of the answer that does not have the documented type."""


def parse_datetime(value: str) -> datetime:
    """ISO 8601 -> an aware datetime (a value without a zone is taken as UTC)."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_moment(value: datetime | date | str) -> str:
    """A datetime (which must carry its zone), a date or an ISO string, for a request."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{value!r} has no time zone; use an aware datetime")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _scalar(kind: type) -> Converter:
    def convert(value: Any) -> Any:
        if kind is datetime:
            if not isinstance(value, str):
                raise ConversionError(f"expected a date-time string, got {value!r}")
            return parse_datetime(value)
        if kind is Decimal:
            if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
                raise ConversionError(f"expected a number, got {value!r}")
            amount = value if isinstance(value, Decimal) else Decimal(str(value))
            return amount.quantize(CENT)  # money: TZS with two decimals
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
                raise ConversionError(f"expected a number, got {value!r}")
            return float(value)
        if kind is int and isinstance(value, Decimal) and value == value.to_integral_value():
            return int(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConversionError(f"expected {kind.__name__}, got {value!r}")
        return value

    return convert


@functools.cache
def converter(hint: Any) -> Converter:
    """The function turning a JSON value into ``hint`` (a class, ``X | None``, ``list[X]``,
    ``dict[str, X]``, a dataclass or ``Any``)."""
    if hint is Any:
        return plain_json
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        inner = converter(options[0]) if len(options) == 1 else plain_json
        return lambda value: None if value is None else inner(value)
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        item = converter(item_hint)

        def convert_list(value: Any) -> Any:
            if not isinstance(value, list):
                raise ConversionError(f"expected a list, got {value!r}")
            return [item(element) for element in value]

        return convert_list
    if origin is dict:
        _, value_hint = typing.get_args(hint)
        member = converter(value_hint)

        def convert_dict(value: Any) -> Any:
            if not isinstance(value, dict):
                raise ConversionError(f"expected an object, got {value!r}")
            return {str(key): member(element) for key, element in value.items()}

        return convert_dict
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return functools.partial(build, hint)
    if isinstance(hint, type):
        return _scalar(hint)
    raise TypeError(f"no converter for {hint!r}")


def plain_json(value: Any) -> Any:
    """A free-form JSON value, with the parser's Decimals turned back into floats (only
    money fields are Decimal)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [plain_json(element) for element in value]
    if isinstance(value, dict):
        return {key: plain_json(element) for key, element in value.items()}
    return value


Plan = tuple[tuple[str, Converter, bool], ...]  # (field, its converter, required)
_plans: dict[type, Plan] = {}


def _plan(cls: type) -> Plan:
    plan = _plans.get(cls)
    if plan is None:
        plan = _plans[cls] = _make_plan(cls)
    return plan


def _make_plan(cls: type) -> Plan:
    hints = typing.get_type_hints(cls)
    return tuple(
        (
            field.name,
            converter(hints[field.name]),
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING,
        )
        for field in dataclasses.fields(cls)
        if field.init and field.metadata.get("api", True)
    )


def build(cls: type[T], data: Any, **extra: Any) -> T:
    """An instance of the dataclass ``cls`` from the JSON object ``data``; ``extra`` fills
    fields that are not in the answer's body (e.g. from its headers)."""
    if not isinstance(data, dict):
        raise ConversionError(f"expected an object for {cls.__name__}, got {data!r}")
    values: dict[str, Any] = {}
    for name, convert, required in _plan(cls):
        if name in data:
            try:
                values[name] = convert(data[name])
            except ConversionError as exc:
                raise ConversionError(f"{cls.__name__}.{name}: {exc}") from None
        elif required:
            raise ConversionError(f"{cls.__name__}: the answer has no {name!r}")
    values.update(extra)
    return cls(**values)
