"""Helpers the tests import: an API client bound to a key, envelope assertions."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core import signals
from django.db import close_old_connections, connection
from psycopg import pq
from rest_framework.test import APIClient


class Api:
    """An API client bound to one key, with JSON by default."""

    def __init__(self, raw_key: str | None) -> None:
        self.client = APIClient()
        self.raw_key = raw_key
        if raw_key:
            self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    def get(self, path: str, data: Any = None, **extra: Any) -> Any:
        return self.client.get(_url(path), data, **extra)

    def post(self, path: str, data: Any = None, **extra: Any) -> Any:
        return self.client.post(_url(path), data, format="json", **extra)

    def patch(self, path: str, data: Any = None, **extra: Any) -> Any:
        return self.client.patch(_url(path), data, format="json", **extra)

    def delete(self, path: str, **extra: Any) -> Any:
        return self.client.delete(_url(path), **extra)


def _url(path: str) -> str:
    return path if path.startswith("/") else f"{settings.MIFUMO_API_PREFIX}{path}"


ENVELOPE_KEYS = {"success", "message", "data", "error_code", "details"}


def assert_envelope(response: Any, status: int, error_code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == ENVELOPE_KEYS, body
    assert body["success"] is (status < 400)
    assert body["error_code"] == error_code
    if status < 400:
        assert body["details"] is None
    return body


@contextmanager
def keep_connection() -> Iterator[None]:
    """For a test calling the WSGI application: it fires request_started and finished as a
    server would, and the test's database connection must outlive every request (its
    transaction holds the test's data)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


PARSE = re.compile(r'^"(?P<name>[^"]*)" "(?P<text>.*)" \d+[ N0-9]*$', re.S)
BIND = re.compile(r'^"[^"]*" "(?P<name>[^"]*)"')


@contextmanager
def wire() -> Iterator[list[str]]:
    """The statements the connection sends to PostgreSQL inside the block, as sent: a simple
    query as its text; a statement the driver prepares as ``PREPARE <name> AS <text>`` when
    it is parsed and ``EXECUTE <name>`` at each run; an unnamed one as its text at each run."""
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    statements: list[str] = []
    with tempfile.TemporaryFile() as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield statements
        finally:
            pgconn.untrace()
            trace.seek(0)
            unnamed = ""
            # One message per entry; a statement's text may hold line breaks.
            for entry in re.split(r"\n(?=[FB]\t)", trace.read().decode().strip()):
                fields = entry.split("\t", 3)
                if len(fields) != 4 or fields[0] != "F":
                    continue
                kind, rest = fields[2], fields[3].strip()
                if kind == "Query":
                    statements.append(rest.strip('"'))
                elif kind == "Parse" and (parse := PARSE.match(rest)):
                    if parse["name"]:
                        statements.append(f"PREPARE {parse['name']} AS {parse['text']}")
                    else:
                        unnamed = parse["text"]
                elif kind == "Bind" and (bind := BIND.match(rest)):
                    statements.append(f"EXECUTE {bind['name']}" if bind["name"] else unnamed)


def prepared_text(execute: str) -> str:
    """The SQL of the prepared statement that ``execute`` runs."""
    name = execute.removeprefix("EXECUTE ")
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE name = %s", [name])
        [(text,)] = cursor.fetchall()
    return str(text)


def same_as_the_orm(read: Any, model: Any) -> None:
    """``read``, an instance made from a row, holds what the ORM reads of it: every field's
    value, of the same type, and the state of an instance loaded from the database."""
    stored = model.objects.get(pk=read.pk)
    for field in model._meta.concrete_fields:
        value = getattr(read, field.attname)
        assert value == getattr(stored, field.attname), field.name
        assert type(value) is type(getattr(stored, field.attname)), field.name
    assert not read._state.adding and read._state.db == stored._state.db
