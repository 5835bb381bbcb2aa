"""JSON values from the API -> the typed values of ``models`` (and back for requests).

The response JSON is read with ``parse_float=Decimal``, so money arrives exact; a field typed
``float`` gets a float. Times are ISO 8601 with ``Z`` and become aware datetimes. Keys the
client does not know are ignored, so a newer server does not break an older client; a
missing key or a value of another type is a ``ConversionError``.

Reading a page of a hundred rows is most of the client's own work per call, so each
dataclass gets a reader of its own, compiled once from its fields: a type check or a
conversion per field and one constructor call, no loop over a field table.
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
Reader = Callable[[dict[str, Any], dict[str, Any]], Any]


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


def _to_datetime(value: Any) -> datetime:
    if value.__class__ is not str:
        raise ConversionError(f"expected a date-time string, got {value!r}")
    try:
        return parse_datetime(value)
    except ValueError:
        raise ConversionError(f"expected ISO 8601, got {value!r}") from None


def _to_money(value: Any) -> Decimal:
    """Money: TZS with two decimals."""
    if value.__class__ is Decimal:
        return value.quantize(CENT)  # type: ignore[no-any-return]
    if value.__class__ in (int, str):
        try:
            return Decimal(value).quantize(CENT)
        except ArithmeticError:
            pass
    raise ConversionError(f"expected a number, got {value!r}")


def _to_float(value: Any) -> float:
    if value.__class__ in (Decimal, int, float):
        return float(value)
    raise ConversionError(f"expected a number, got {value!r}")


def _exactly(kind: type) -> Converter:
    def check(value: Any) -> Any:
        if value.__class__ is not kind:
            raise ConversionError(f"expected {kind.__name__}, got {value!r}")
        return value

    return check


SCALARS: dict[Any, Converter] = {
    datetime: _to_datetime,
    Decimal: _to_money,
    float: _to_float,
    str: _exactly(str),
    int: _exactly(int),
    bool: _exactly(bool),
}


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


def _optional(hint: Any) -> tuple[bool, Any]:
    """(whether None is allowed, the type without None)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        allows_none = len(options) < len(typing.get_args(hint))
        return allows_none, options[0] if len(options) == 1 else Any
    return False, hint


@functools.cache
def converter(hint: Any) -> Converter:
    """The function turning a JSON value into ``hint`` (a class, ``X | None``, ``list[X]``,
    ``dict[str, X]``, a dataclass or ``Any``)."""
    allows_none, inner = _optional(hint)
    if allows_none:
        convert = converter(inner)
        return lambda value: None if value is None else convert(value)
    if hint is Any:
        return plain_json
    origin = typing.get_origin(hint)
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        item = converter(item_hint)

        def convert_list(value: Any) -> Any:
            if value.__class__ is not list:
                raise ConversionError(f"expected a list, got {value!r}")
            return [item(element) for element in value]

        return convert_list
    if origin is dict:
        _, value_hint = typing.get_args(hint)
        member = converter(value_hint)

        def convert_dict(value: Any) -> Any:
            if value.__class__ is not dict:
                raise ConversionError(f"expected an object, got {value!r}")
            return {str(key): member(element) for key, element in value.items()}

        return convert_dict
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return functools.partial(build, hint)
    if hint in SCALARS:
        return SCALARS[hint]
    raise TypeError(f"no converter for {hint!r}")


def _compile(cls: type) -> Reader:
    """The reader of ``cls``: ``reader(data, extra)`` -> an instance.

    It fills the instance's slots directly: a frozen dataclass's ``__init__`` goes through
    ``object.__setattr__`` per field, which costs more than reading the whole row."""
    hints = typing.get_type_hints(cls)
    namespace: dict[str, Any] = {
        "cls": cls,
        "new": object.__new__,
        "ConversionError": ConversionError,
    }
    lines = ["def read(data, extra):", "    instance = new(cls)"]
    for index, field in enumerate(dataclasses.fields(cls)):
        name, value = field.name, f"v{index}"
        key = field.metadata.get("key", name)  # the answer's name, where it is no identifier
        namespace[f"set{index}"] = getattr(cls, name).__set__
        if field.default is not dataclasses.MISSING:
            namespace[f"default{index}"] = field.default
        if not field.metadata.get("api", True):
            # Filled by the client (``extra``), not read from the answer.
            lines.append(f"    set{index}(instance, extra.get({name!r}, default{index}))")
            continue
        if field.default is not dataclasses.MISSING:
            lines.append(f"    {value} = data.get({key!r}, default{index})")
        elif field.default_factory is not dataclasses.MISSING:
            namespace[f"factory{index}"] = field.default_factory
            lines.append(f"    {value} = data[{key!r}] if {key!r} in data else factory{index}()")
        else:
            lines.append(f"    {value} = data[{key!r}]")
        allows_none, inner = _optional(hints[name])
        guard = f"{value} is not None and " if allows_none else ""
        if inner in (str, int, bool):
            # The common case, checked in place: no call.
            namespace[inner.__name__] = inner
            lines += [
                f"    if {guard}{value}.__class__ is not {inner.__name__}:",
                f"        raise ConversionError('{cls.__name__}.{name}: expected "
                f"{inner.__name__}, got %r' % ({value},))",
            ]
        else:
            namespace[f"convert{index}"] = converter(inner)
            pad = "    " if allows_none else ""
            if allows_none:
                lines.append(f"    if {value} is not None:")
            lines += [
                f"{pad}    try:",
                f"{pad}        {value} = convert{index}({value})",
                f"{pad}    except ConversionError as exc:",
                f"{pad}        raise ConversionError('{cls.__name__}.{name}: %s' % exc) from None",
            ]
        lines.append(f"    set{index}(instance, {value})")
    lines.append("    return instance")
    exec("\n".join(lines), namespace)  # noqa: S102 - code made here from the class's fields
    reader: Reader = namespace["read"]
    return reader


_readers: dict[type, Reader] = {}


def build(cls: type[T], data: Any, **extra: Any) -> T:
    """An instance of the dataclass ``cls`` from the JSON object ``data``; ``extra`` fills
    fields that are not in the answer's body (e.g. from its headers)."""
    if data.__class__ is not dict:
        raise ConversionError(f"expected an object for {cls.__name__}, got {data!r}")
    reader = _readers.get(cls)
    if reader is None:
        reader = _readers[cls] = _compile(cls)
    try:
        instance: T = reader(data, extra)
    except KeyError as missing:
        raise ConversionError(f"{cls.__name__}: the answer has no {missing}") from None
    return instance
