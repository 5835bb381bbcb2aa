"""The database backend's ``timestamptz`` loader (mifumo.postgresql): the driver's C parser
reads what Django's own loader would, value for value and error for error, and Django's
loader still reads whenever the C one could differ. Against the real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from django.db import connection
from psycopg.postgres import types

from integration.models import Account
from mifumo.postgresql import base
from mifumo.postgresql.base import DatabaseWrapper, UtcTimestamptzLoader, _DjangoUtcLoader

TIMESTAMPTZ = types["timestamptz"].oid

# Text PostgreSQL accepts as a timestamptz: offsets of every kind, the ends of Python's range,
# an offset in seconds (a zone's local mean time), and what Python cannot hold.
TIMES = [
    "2001-02-03 04:05:06.789+03",
    "2026-12-07 05:00:00.000001+00",
    "2026-03-29 01:30:00-05:30",
    "1970-01-01 00:00:00.000001+14",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "1900-01-01 00:00:00+00:19:32",
    "2001-02-03 04:05:06 BC",
    "infinity",
    "-infinity",
]


def read(loader: type[Any] | None, text: str) -> Any:
    """``text`` read as a timestamptz through the test's connection, by ``loader`` (registered
    on a cursor of its own) or by what the connection has; an error as its type."""
    connection.ensure_connection()
    cursor = connection.connection.cursor()
    if loader is not None:
        cursor.adapters.register_loader("timestamptz", loader)
    try:
        row = cursor.execute("SELECT %s::timestamptz", [text]).fetchone()
    except psycopg.Error as error:
        return type(error)
    finally:
        cursor.close()
    assert row is not None
    return row[0]


def same_reading(text: str) -> None:
    mine, djangos = read(None, text), read(_DjangoUtcLoader, text)
    assert mine == djangos, text
    if isinstance(mine, datetime):
        assert mine.tzinfo is djangos.tzinfo is UTC
        assert mine.utcoffset() == timedelta(0)


@pytest.fixture
def session_zone() -> Iterator[None]:
    """The test's connection with a session time zone other than UTC (as Django would never
    leave it), set back afterwards."""
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE '+03:00'")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")


@pytest.mark.django_db
def test_the_connection_reads_times_with_the_c_loader() -> None:
    connection.ensure_connection()
    adapters = connection.connection.adapters
    assert adapters.get_loader(TIMESTAMPTZ, psycopg.pq.Format.TEXT) is UtcTimestamptzLoader
    loader = UtcTimestamptzLoader(TIMESTAMPTZ, connection.connection)
    assert base._C_LOADER is not None
    assert isinstance(loader, base._C_LOADER)


@pytest.mark.django_db
@pytest.mark.parametrize("text", TIMES)
def test_a_time_reads_as_djangos_loader_reads_it(text: str) -> None:
    same_reading(text)


@pytest.mark.django_db
def test_out_of_range_times_are_refused_alike() -> None:
    for text in ("infinity", "-infinity", "2001-02-03 04:05:06 BC"):
        assert read(None, text) is psycopg.DataError
        assert read(_DjangoUtcLoader, text) is psycopg.DataError


@pytest.mark.django_db
def test_djangos_cursor_keeps_the_loader() -> None:
    """Django compares the loader's zone with its own on every cursor, and would register its
    loader on the cursor if they differed."""
    with connection.cursor() as cursor:
        loader = cursor.cursor.adapters.get_loader(TIMESTAMPTZ, psycopg.pq.Format.TEXT)
        assert loader is UtcTimestamptzLoader
        cursor.execute("SELECT %s::timestamptz", [TIMES[0]])
        assert cursor.fetchone()[0] == datetime(2001, 2, 3, 1, 5, 6, 789000, tzinfo=UTC)


@pytest.mark.django_db
def test_a_session_in_another_zone_is_read_by_djangos_loader(session_zone: None) -> None:
    loader = UtcTimestamptzLoader(TIMESTAMPTZ, connection.connection)
    assert isinstance(loader, _DjangoUtcLoader)
    for text in TIMES:
        same_reading(text)


@pytest.mark.django_db
def test_without_the_c_module_djangos_loader_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "_C_LOADER", None)
    loader = UtcTimestamptzLoader(TIMESTAMPTZ, connection.connection)
    assert isinstance(loader, _DjangoUtcLoader)
    for text in TIMES:
        same_reading(text)


def test_a_loader_without_a_connection_is_djangos() -> None:
    loader = UtcTimestamptzLoader(TIMESTAMPTZ, None)
    assert isinstance(loader, _DjangoUtcLoader)
    assert loader.load(b"2001-02-03 04:05:06.789+00") == datetime(
        2001, 2, 3, 4, 5, 6, 789000, tzinfo=UTC
    )


@pytest.mark.django_db
def test_a_database_in_another_zone_keeps_djangos_loader() -> None:
    """With a database ``TIME_ZONE`` Django's zone is not UTC, and its loader is left in place
    (the zone is given as Django's wrapper holds it: the machine may have no zone files)."""
    zone = timezone(timedelta(hours=3))
    other = DatabaseWrapper(connection.settings_dict, alias="timestamps_other_zone")
    other.__dict__["timezone"] = zone  # Django's cached property, from TIME_ZONE
    try:
        other.ensure_connection()
        loader = other.connection.adapters.get_loader(TIMESTAMPTZ, psycopg.pq.Format.TEXT)
        assert loader is not UtcTimestamptzLoader
        assert loader.timezone is zone
        with other.cursor() as cursor:
            cursor.execute("SELECT %s::timestamptz", [TIMES[0]])
            assert cursor.fetchone()[0].tzinfo is zone
    finally:
        other.close()


@pytest.mark.django_db
def test_a_model_time_round_trips(alice: Account) -> None:
    moment = datetime(2026, 12, 7, 5, 6, 7, 891011, tzinfo=UTC)
    Account.objects.filter(pk=alice.pk).update(created_at=moment)
    read_back = Account.objects.get(pk=alice.pk).created_at
    assert read_back == moment
    assert read_back.tzinfo is UTC
