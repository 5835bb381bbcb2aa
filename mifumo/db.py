"""Database helpers shared by the apps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction


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


def is_postgres() -> bool:
    return connection.vendor == "postgresql"
