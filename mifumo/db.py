"""Database helpers shared by the apps."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Field, Model
from django.utils import timezone

logger = logging.getLogger(__name__)


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


@functools.cache
def _insert_statement(model: type[Model]) -> tuple[str, tuple[Field[Any, Any], ...]]:
    fields = tuple(model._meta.concrete_fields)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    table = quote(model._meta.db_table)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608 - model names
    return sql, fields


def insert_row(instance: Model) -> None:
    """INSERT one row whose primary key is already set, with the statement written once per
    process (``Model.save()`` builds it anew each time, which showed on the send path).
    Values are prepared by the fields as ``save()`` would; no signals are sent."""
    if instance.pk is None:
        raise ValueError("insert_row needs the primary key set")
    sql, fields = _insert_statement(type(instance))
    values = [
        field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
    instance._state.adding = False
    instance._state.db = connection.alias


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
