"""Django's PostgreSQL backend with a health check that costs no round trip.

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

from django.db.backends.postgresql import base


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


class DatabaseWrapper(base.DatabaseWrapper):
    # Set by Django's base class; its stubs leave them out.
    health_check_enabled: bool
    health_check_done: bool

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
