"""Database helpers shared by the apps, and the one home of their bulk SQL.

The fast paths of the send, dispatch, receipt and import code write many rows with a few
statements (COPY, ``INSERT ... SELECT FROM unnest``, ``UPDATE ... FROM unnest``) instead of
the ORM, which builds and quotes parameters row by row, or a CASE per column and row for a
``bulk_update``. Table and column names come from the models' metadata, quoted; every value
is a parameter, and each column's values go as one array, so the per-value work happens in
the driver's C code."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import connection, models, transaction
from django.db.models import Field, Model
from django.db.models.base import ModelState
from django.db.models.expressions import Col
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from mifumo.postgresql.base import Array

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=Model)


@contextmanager
def atomic_unless_nested() -> Iterator[None]:
    """Join the caller's transaction, or open one.

    Unlike ``transaction.atomic()`` inside an outer block this adds no savepoint, and a
    domain exception raised before any write does not poison the caller's transaction.
    """
    if connection.in_atomic_block:
        yield
    else:
        with transaction.atomic():
            yield


def lock_until_commit(name: str) -> None:
    """Hold a lock named ``name`` until the open transaction ends: callers that take it run
    one at a time (a check, such as a count against a limit, then the write it allows)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])


@functools.cache
def _insert_statement(model: type[Model], *, select: bool = False) -> str:
    """The INSERT of every concrete field, in order (``_row_values`` gives the values)."""
    fields = model._meta.concrete_fields
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    table = quote(model._meta.db_table)
    values = f"SELECT {placeholders}" if select else f"VALUES ({placeholders})"
    return f"INSERT INTO {table} ({columns}) {values}"


# Field classes, exactly, whose ``pre_save`` reads the attribute and whose
# ``get_db_prep_save`` gives None, or a value that passes the test, back unchanged on
# PostgreSQL.
_AS_IS: dict[type[Field[Any, Any]], Callable[[Any], bool]] = {
    models.CharField: lambda value: isinstance(value, str),
    models.TextField: lambda value: isinstance(value, str),
    models.URLField: lambda value: isinstance(value, str),
    models.BooleanField: lambda value: type(value) is bool,
    # Aware only: Django makes a naive one aware, with a warning.
    models.DateTimeField: lambda value: type(value) is datetime and value.tzinfo is not None,
    # Not the integer fields: they wrap an int in the driver's type of their size.
}
# What a field that was not loaded (deferred) reads as: the field loads it.
_MISSING = object()
# An automatic primary key, which a foreign key asks, passes an int on as it is.
_AUTO = (models.AutoField, models.BigAutoField, models.SmallAutoField)


def _is_int(value: Any) -> bool:
    return type(value) is int


@functools.cache
def _preparers(
    model: type[Model],
) -> tuple[tuple[str, Field[Any, Any], Callable[[Any], bool] | None], ...]:
    """Per concrete field, in order: its attribute, the field, and the test of a value it
    passes on as it is (None: always ask the field)."""
    out = []
    for field in model._meta.concrete_fields:
        as_is = _AS_IS.get(type(field))
        if isinstance(field, models.ForeignKey):
            # It asks its target field, for anything but None.
            target = field.target_field
            as_is = _AS_IS.get(type(target))
            if isinstance(target, _AUTO):
                as_is = _is_int
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            as_is = None
        out.append((field.attname, field, as_is))
    return tuple(out)


def _row_values(instance: Model) -> list[Any]:
    """The row's values as ``save()`` prepares them (in ``_insert_statement``'s order), the
    field's work skipped for a value it passes on as it is: four or five Python calls per
    field, which showed on the send path."""
    if instance.pk is None:
        raise ValueError("inserting a row needs the primary key set")
    values = []
    attributes = instance.__dict__
    for attname, field, as_is in _preparers(type(instance)):
        value = attributes.get(attname, _MISSING)  # a deferred field is the field's to load
        if as_is is not None and (value is None or as_is(value)):
            values.append(value)
        else:
            values.append(field.get_db_prep_save(field.pre_save(instance, True), connection))
    return values


def _mark_saved(instance: Model) -> None:
    instance._state.adding = False
    instance._state.db = connection.alias


def insert_row(instance: Model) -> None:
    """INSERT one row whose primary key is already set, with the statement written once per
    process (``Model.save()`` builds it anew each time, which showed on the send path).
    Values are prepared by the fields as ``save()`` would; no signals are sent."""
    sql = _insert_statement(type(instance))
    values = _row_values(instance)
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
    _mark_saved(instance)


def insert_row_sql(instance: Model, *, where: str) -> tuple[str, list[Any]]:
    """``insert_row``'s INSERT as ``INSERT ... SELECT <values> WHERE <where>``, with its
    parameters, to be part of a larger statement (a data-modifying CTE). Call
    ``mark_inserted`` once the statement wrote the row."""
    sql = _insert_statement(type(instance), select=True)
    return f"{sql} WHERE {where}", _row_values(instance)


def mark_inserted(instance: Model) -> None:
    """The instance's row is stored: later saves UPDATE it."""
    _mark_saved(instance)


def delete_older_than(model: type[Model], days: int, *, batch: int = 10_000) -> int:
    """Delete the rows of ``model`` whose ``created_at`` is more than ``days`` days old, a
    batch per statement so that no lock is held for long; 0 days keeps everything. Returns
    how many went."""
    if days <= 0:
        return 0
    cutoff = timezone.now() - timedelta(days=days)
    old = model._default_manager.filter(created_at__lt=cutoff).order_by()
    deleted = 0
    while ids := list(old.values_list("pk", flat=True)[:batch]):
        count, _ = model._default_manager.filter(pk__in=ids).delete()
        deleted += count
    if deleted:
        logger.info("deleted %d %s older than %d days", deleted, model._meta.db_table, days)
    return deleted


@functools.cache
def table(model: type[Model]) -> str:
    """The model's table name, quoted for SQL."""
    return str(connection.ops.quote_name(model._meta.db_table))


@functools.cache
def column(model: type[Model], name: str) -> str:
    """The column of the model's field ``name``, quoted for SQL."""
    return str(connection.ops.quote_name(_field(model, name).column))


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, Field)
    return field


@functools.cache
def columns(model: type[Model], alias: str = "") -> str:
    """Every column of the model, quoted (each prefixed with ``alias.``), in the order
    ``read_models`` reads them: SQL written once selects them first."""
    prefix = f"{alias}." if alias else ""
    quote = connection.ops.quote_name
    return ", ".join(prefix + quote(field.column) for field in model._meta.concrete_fields)


def iso_sql(expression: str) -> str:
    """SQL giving the timestamp ``expression`` as ``mifumo.api.fields.iso`` writes it (UTC, to
    the second, ``Z``; NULL stays NULL), for rows that go out as they are read: parsing each
    timestamp into a datetime and formatting it back cost the web process more than running
    a reports page's query."""
    return f"to_char({expression} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"


@functools.cache
def _reader(model: type[Model]) -> tuple[list[str], list[tuple[int, Col, list[Any]]]]:
    """The model's field names in ``columns`` order, and for each field whose database
    value needs converting (a JSON field), its place, column and converters, as the ORM
    applies them."""
    names, converting = [], []
    for index, field in enumerate(model._meta.concrete_fields):
        names.append(field.attname)
        col = Col(model._meta.db_table, field)
        found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if found:
            converting.append((index, col, found))
    return names, converting


@functools.lru_cache(maxsize=256)
def _plain(model: type[Model], names: tuple[str, ...]) -> bool:
    """Whether ``__init__`` would only store each of these fields' values under its name: each
    is a concrete field's attribute, once, with no descriptor of its own that does more."""
    attnames = {field.attname for field in model._meta.concrete_fields}
    if len(set(names)) != len(names) or not attnames.issuperset(names):
        return False
    for name in names:
        descriptor = getattr(model, name, None)
        if hasattr(descriptor, "__set__") and not isinstance(
            descriptor, ForeignKeyDeferredAttribute
        ):
            return False
    return True


def from_row(
    model: type[M], names: Sequence[str], values: Sequence[Any], alias: str | None = None
) -> M:
    """``model.from_db(alias, names, values)``: an instance read from the database (``alias``,
    the default connection's when None), the fields not named deferred. For a model nobody
    watches being built (no ``pre_init`` or ``post_init`` receiver) it is made as
    ``__init__`` would make it, without its call per field: the hot reads build tens of
    instances per request."""
    if alias is None:
        alias = connection.alias
    if (
        len(names) != len(values)
        or not _plain(model, tuple(names))
        or pre_init.has_listeners(model)
        or post_init.has_listeners(model)
    ):
        return model.from_db(alias, names, values)
    instance = model.__new__(model)
    state = instance._state = ModelState()
    state.adding = False
    state.db = alias
    instance.__dict__.update(zip(names, values, strict=True))
    return instance


def model_at(model: type[M], row: Sequence[Any], start: int = 0, alias: str | None = None) -> M:
    """The instance of ``model`` whose columns (``columns(model)``) begin at ``start`` in a
    row of a statement, made as ``read_models`` makes it."""
    names, converting = _reader(model)
    values = list(row[start : start + len(names)])
    for index, col, converters in converting:
        for convert in converters:
            values[index] = convert(values[index], col, connection)
    return from_row(model, names, values, alias)


def read_models(model: type[M], sql: str, params: Sequence[Any]) -> list[tuple[M, tuple[Any, ...]]]:
    """The rows of ``sql`` (its first columns ``columns(model)``) as instances of ``model``,
    each beside the values of the columns selected after those. What ``Model.objects.raw``
    gives, without matching the cursor's column names to the model's fields on every call,
    which cost more than the query on the hot reads."""
    width = len(_reader(model)[0])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    alias = connection.alias
    return [(model_at(model, row, 0, alias), tuple(row[width:])) for row in rows]


@functools.cache
def _array_type(model: type[Model], name: str) -> str:
    """The column's type for an array of its values, without a length (a value too long
    for the column then fails the statement rather than being cut short by the cast)."""
    kind = _field(model, name).db_type(connection)
    assert kind is not None
    return f"{kind.split('(')[0]}[]"


def copy_rows(model: type[Model], fields: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write ``rows`` (values in the order of ``fields``) into the model's table with COPY."""
    columns = ", ".join(column(model, name) for name in fields)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the driver's cursor: COPY is not part of the DB-API
        with raw.copy(f"COPY {table(model)} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _constant(value: Any, params: list[Any]) -> str:
    if value is None:
        return "NULL"
    params.append(value)
    return "%s"


def insert_from_arrays_sql(
    model: type[Model],
    rows: Mapping[str, Sequence[Any]],
    *,
    same: Mapping[str, Any] | None = None,
    where: str = "",
) -> tuple[str, list[Any]]:
    """``insert_from_arrays``'s INSERT and its parameters, optionally only ``where`` (SQL)
    holds, to be part of a larger statement. Without ``rows`` it inserts one row of the
    ``same`` values."""
    constants = dict(same or {})
    params: list[Any] = []
    names = [*constants, *rows]
    values = [_constant(value, params) for name, value in constants.items()]
    values += [f"v.{column(model, name)}" for name in rows]
    sql = (
        f"INSERT INTO {table(model)} ({', '.join(column(model, n) for n in names)}) "
        f"SELECT {', '.join(values)}"
    )
    if rows:
        arrays = ", ".join(f"%s::{_array_type(model, name)}" for name in rows)
        params += [Array(values_) for values_ in rows.values()]
        sql += f" FROM unnest({arrays}) AS v({', '.join(column(model, name) for name in rows)})"
    if where:
        sql += f" WHERE {where}"
    return sql, params


def insert_from_arrays(
    model: type[Model],
    rows: Mapping[str, Sequence[Any]],
    *,
    same: Mapping[str, Any] | None = None,
    conflict: Sequence[str] = (),
    assign: Mapping[str, str] | None = None,
    skip_existing: bool = False,
) -> None:
    """INSERT one row per position of the ``rows`` arrays (field -> each row's value), with
    ``same`` (field -> one value) in every row. With ``conflict`` (the fields of a unique
    constraint), a row that exists gets ``assign`` instead (field -> SQL over ``EXCLUDED``
    and the table's columns); with ``skip_existing``, a row any unique constraint refuses
    is left out (``bulk_create``'s ``ignore_conflicts``)."""
    sql, params = insert_from_arrays_sql(model, rows, same=same)
    if skip_existing:
        sql += " ON CONFLICT DO NOTHING"
    elif conflict:
        keys = ", ".join(column(model, name) for name in conflict)
        updates = ", ".join(f"{column(model, name)} = {to}" for name, to in (assign or {}).items())
        sql += f" ON CONFLICT ({keys}) DO UPDATE SET {updates}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def update_from_arrays(
    model: type[Model],
    ids: Sequence[Any],
    rows: Mapping[str, Sequence[Any]],
    *,
    same: Mapping[str, Any] | None = None,
    computed: Mapping[str, str] | None = None,
    arrays: Mapping[str, tuple[str, Sequence[Any]]] | None = None,
    where: Mapping[str, Sequence[Any]] | None = None,
) -> list[Any]:
    """One UPDATE for the rows whose primary keys are ``ids``: ``rows`` (field -> each row's
    value, in the order of ``ids``) and ``same`` (field -> one value for every row) are set as
    given, ``computed`` (field -> SQL over the table's row ``r`` and the arrays ``v``) from
    further ``arrays`` (name -> SQL type and each row's value). Only rows whose fields hold
    one of the values ``where`` gives them are updated; returns their primary keys."""
    extra = dict(arrays or {})
    params: list[Any] = []
    sets = [
        f"{column(model, name)} = {_constant(value, params)}"
        for name, value in (same or {}).items()
    ]
    sets += [f"{column(model, name)} = v.{column(model, name)}" for name in rows]
    sets += [f"{column(model, name)} = {sql}" for name, sql in (computed or {}).items()]
    pk = model._meta.pk
    assert pk is not None
    types = [_array_type(model, pk.name), *(_array_type(model, n) for n in rows)]
    types += [f"{kind}[]" for kind, _ in extra.values()]
    names = ["id", *(column(model, n) for n in rows), *map(connection.ops.quote_name, extra)]
    params += [Array(ids), *map(Array, rows.values()), *(Array(v) for _, v in extra.values())]
    sql = (
        f"UPDATE {table(model)} AS r SET {', '.join(sets)} "  # noqa: S608 - names from models
        f"FROM unnest({', '.join(f'%s::{kind}' for kind in types)}) AS v({', '.join(names)}) "
        f"WHERE r.{connection.ops.quote_name(pk.column)} = v.id"
    )
    for name, allowed in (where or {}).items():
        sql += f" AND r.{column(model, name)} = ANY(%s)"
        params.append(list(allowed))
    sql += f" RETURNING r.{connection.ops.quote_name(pk.column)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [key for (key,) in cursor.fetchall()]


def update_by_ids(model: type[Model], ids: Sequence[Any], values: Mapping[str, Any]) -> None:
    """Set ``values`` (field -> one value) on the rows whose primary keys are ``ids``, the
    keys sent as one array."""
    pk = model._meta.pk
    assert pk is not None
    params: list[Any] = []
    sets = ", ".join(
        f"{column(model, name)} = {_constant(value, params)}" for name, value in values.items()
    )
    params.append(list(ids))
    sql = (
        f"UPDATE {table(model)} SET {sets} "  # noqa: S608 - names from the models
        f"WHERE {connection.ops.quote_name(pk.column)} = ANY(%s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
