"""Django's PostgreSQL backend with a health check that costs no round trip, and times read by
the driver's C parser.

With ``CONN_HEALTH_CHECKS`` Django sends ``SELECT 1`` at the first use of a persistent
connection in every request. Here the connection's socket is looked at first: a connection
the server has closed (a restart or shutdown, ``pg_terminate_backend``, an idle-session
timeout) has its goodbye, an error message and the end of the stream, waiting to be read,
while a healthy idle connection has nothing to read. Only when something is waiting (or
over TLS, whose layer may hold bytes the socket does not show) does ``SELECT 1`` run, and a
failing one closes the connection as before, so that the request opens a new one. A server
gone without a word (a cut network) is seen by neither check: ``SELECT 1`` would wait for
the same timeout as the request's first statement.
"""

from __future__ import annotations

import select
from datetime import UTC
from typing import Any

from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg import Connection
from psycopg._cmodule import _psycopg
from psycopg.abc import AdaptContext
from psycopg.adapt import PyFormat
from psycopg.pq import Format
from psycopg.types.array import BaseListDumper, ListDumper


def _quiet(connection: object) -> bool:
    """True when the connection's socket has nothing to read and no error: the server has
    neither closed it nor said anything since the last answer."""
    pgconn = getattr(connection, "pgconn", None)
    if pgconn is None or pgconn.ssl_in_use:
        return False
    try:
        poller = select.poll()
        poller.register(pgconn.socket, select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except Exception:  # noqa: BLE001 - a socket we cannot look at gets the full check
        return False


class Array(list[Any]):
    """One column's values for an array parameter that the statement casts to its type
    (``%s::bigint[]``). Sent as text of no declared type, which the cast types: the driver
    does not look through every element to choose an array type (it did so twice per list,
    which cost the worker's batch statements more than writing the values out). The
    elements are written as for any list sent as text."""


class _ArrayDumper(ListDumper):
    def get_key(self, obj: list[Any], format: PyFormat) -> type:
        return self.cls

    def upgrade(self, obj: list[Any], format: PyFormat) -> BaseListDumper:
        return self


class _DjangoUtcLoader(BaseTzLoader):
    """Django's own loader for a connection in UTC (what it registers)."""

    timezone = UTC


# The driver's C loader; None where the driver runs without its C module.
_C_LOADER: Any = getattr(_psycopg, "TimestamptzLoader", None)


class UtcTimestamptzLoader:
    """What the connection registers for ``timestamptz``: making one makes the driver's C
    loader when the session's time zone is UTC (it then gives UTC times, as Django's loader
    does), else Django's loader. The driver then calls the C loader directly for each value."""

    # Read by the driver when the class is registered.
    format = Format.TEXT
    # What Django's ``create_cursor`` compares with the connection's zone before it
    # registers a loader of its own on the cursor.
    timezone = UTC

    def __new__(cls, oid: int, context: AdaptContext | None = None) -> Any:
        connection = context.connection if context is not None else None
        pgconn = connection.pgconn if connection is not None else None
        in_utc = pgconn is not None and pgconn.parameter_status(b"TimeZone") == b"UTC"
        chosen = _C_LOADER if in_utc and _C_LOADER is not None else _DjangoUtcLoader
        return chosen(oid, context)


class DatabaseWrapper(base.DatabaseWrapper):
    # Set by Django's base class; its stubs leave them out.
    health_check_enabled: bool
    health_check_done: bool

    def get_new_connection(self, conn_params: dict[str, Any]) -> Connection[Any]:
        connection: Connection[Any] = super().get_new_connection(conn_params)
        connection.adapters.register_dumper(Array, _ArrayDumper)
        if self.timezone is UTC:
            loader: Any = UtcTimestamptzLoader  # makes loaders, as a loader class does
            connection.adapters.register_loader("timestamptz", loader)
        return connection

    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and not getattr(self, "pool", None)
            and _quiet(self.connection)
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
