"""A small send written with ONE statement: the opt-out check, the debit with its ledger
row, the message and its recipients, as data-modifying CTEs.

Most sends are one-recipient OTPs and alerts. Written the general way they cost five round
trips (the opt-out SELECT, BEGIN, the message, the recipients, the debit, COMMIT); here one,
in autocommit when no transaction is open. The statement writes everything or nothing: when
a number is opted out, the balance does not cover the cost or the debit would cross the
account's low-balance threshold, it writes nothing and the caller takes the general path,
which gives those cases their usual errors, skips and alerts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections

from contacts.selectors import opted_out_sql
from integration.models import LedgerEntry
from integration.services import movement_ctes, movement_recorded
from mifumo.db import insert_from_arrays_sql, insert_row_sql, mark_inserted
from sms.models import Message, Recipient

# Up to this many recipients a send takes the one statement; a bigger one writes its
# recipients with COPY (a statement's parameters grow with every recipient).
ONE_STATEMENT_MAX = 100


@dataclass(frozen=True)
class Outcome:
    written: bool
    opted_out: list[str]  # the numbers found opted out (then nothing is written)


def send_in_one_statement(
    *,
    message: Message,
    phones: list[str],
    recipients: Mapping[str, Sequence[Any]],
    same: Mapping[str, Any],
    debit: LedgerEntry | None,
) -> Outcome:
    """Write ``message``, its ``recipients`` (field -> each row's value, with ``same``: field
    -> the one value of every row) and, if given, the ``debit`` (from
    ``integration.services.debit_entry``), only if none of ``phones`` is an opted-out contact
    of the account and the debit goes through."""
    blocked, params = opted_out_sql(account_id=message.account_id, phones=phones)
    ctes = [f"blocked AS ({blocked})"]
    clear = "NOT EXISTS (SELECT FROM blocked)"
    go = clear
    if debit is not None:
        moves, move_params = movement_ctes(
            debit, require_cover=True, only_if=clear, alert_free=True
        )
        ctes.append(moves)
        params += move_params
        go = "EXISTS (SELECT FROM moved)"
    message_sql, message_params = insert_row_sql(message, where=go)
    ctes.append(f"message AS ({message_sql} RETURNING 1)")
    params += message_params
    recipients_sql, recipients_params = insert_from_arrays_sql(
        Recipient, recipients, same=same, where=go
    )
    ctes.append(f"recipients AS ({recipients_sql})")
    params += recipients_params
    outcome = "ARRAY(SELECT phone_number FROM blocked), EXISTS (SELECT FROM message)"
    if debit is not None:
        outcome += (
            ", (SELECT id FROM entry), (SELECT balance_after FROM entry), "
            "(SELECT low_balance_threshold FROM moved), (SELECT currency FROM moved)"
        )
    row = _run_prepared(f"WITH {', '.join(ctes)} SELECT {outcome}", params)
    assert row is not None
    opted_out, written = list(row[0]), bool(row[1])
    if written:
        mark_inserted(message)
        if debit is not None:
            movement_recorded(debit, row[2:])
    return Outcome(written=written, opted_out=opted_out)


# Each statement text built so far, kept as one object: the driver keeps the adapters it
# chose for a query's parameters while the same text object runs again on the same cursor.
_TEXTS: dict[str, str] = {}
_CURSOR = "mifumo_send_cursor"


def _run_prepared(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    """Run ``sql`` as a prepared statement of the connection and return its row.

    PostgreSQL takes longer to plan the send's statement than to run it; prepared, it is
    planned once per connection (its generic plan, after the first few runs). Like every
    statement (``mifumo/settings.py``) it binds its parameters on the server, but it is
    prepared at its first run rather than its sixth. The driver keeps
    the prepared statements of each connection (its text depends on whether there is a
    debit and on whether there is more than one recipient, so a handful), and a reconnect
    prepares again. One cursor serves every send of a connection (a connection belongs to
    one thread): a new cursor, or a new text object, makes the driver look up the adapter
    of each parameter's type again."""
    sql = _TEXTS.setdefault(sql, sql)
    # The thread's connection wrapper, looked up once (each use of the ``connection`` proxy
    # looks it up again).
    db = connections[DEFAULT_DB_ALIAS]
    # What Django does before it hands out a cursor (the health check, connecting, the
    # thread check), without the cursor and its wrappers, which this statement does not use.
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    raw = db.connection
    # Kept on the thread's connection wrapper, for the driver connection it was made on.
    kept: tuple[Any, psycopg.Cursor[Any]] | None = getattr(db, _CURSOR, None)
    if kept is None or kept[0] is not raw or kept[1].closed:
        kept = (raw, psycopg.Cursor(raw))
        setattr(db, _CURSOR, kept)
    cursor = kept[1]
    with db.wrap_database_errors:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchone()
