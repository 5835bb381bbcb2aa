"""The database backend's health check (mifumo.postgresql): a healthy persistent connection
is not pinged with SELECT 1 at each request, and one the server closed is still found out
and replaced before the request uses it. Against the real PostgreSQL server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import close_old_connections, connection

from integration.services import IssuedKey
from sms.models import Message
from tests.helpers import Api, assert_envelope
from tests.workers import database_url

SEND = {"message": "Habari", "recipients": ["+255712345678"]}


@pytest.fixture
def observer() -> Iterator[psycopg.Connection[Any]]:
    """A connection of its own, to watch and end the test's connection from the server."""
    with psycopg.connect(database_url(), autocommit=True) as other:
        yield other


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid: int = cursor.fetchone()[0]
    return pid


def last_query(observer: psycopg.Connection[Any], pid: int) -> str:
    row = observer.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    assert row is not None
    return str(row[0])


def terminate(observer: psycopg.Connection[Any], pid: int) -> None:
    assert observer.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    deadline = time.monotonic() + 10
    while observer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
        assert time.monotonic() < deadline, "the backend did not exit"
        time.sleep(0.01)


def new_request() -> None:
    """What Django does when a request starts (the test client leaves it out)."""
    close_old_connections()


@pytest.mark.django_db(transaction=True)
def test_a_healthy_connection_is_used_without_a_ping(observer: psycopg.Connection[Any]) -> None:
    assert getattr(connection, "health_check_enabled", False)
    pid = backend_pid()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last request'")
    new_request()
    with connection.cursor():
        pass  # the first use of the request: where Django's check runs
    assert getattr(connection, "health_check_done", False)
    assert last_query(observer, pid) == "SELECT 'the last request'"
    # What the stock check would have sent, seen the same way.
    assert connection.is_usable()
    assert last_query(observer, pid) == "SELECT 1"


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_ended_is_replaced(observer: psycopg.Connection[Any]) -> None:
    pid = backend_pid()
    terminate(observer, pid)
    new_request()
    assert backend_pid() != pid
    assert connection.is_usable()


@pytest.mark.django_db(transaction=True)
def test_a_send_after_the_server_ended_the_connection_succeeds(
    observer: psycopg.Connection[Any], alice_key: IssuedKey
) -> None:
    api = Api(alice_key.raw)
    for _ in range(3):
        new_request()
        assert_envelope(api.post("sms/send/", SEND), 200)
    terminate(observer, backend_pid())
    new_request()
    message_id = assert_envelope(api.post("sms/send/", SEND), 200)["data"]["message_id"]
    assert Message.objects.filter(pk=message_id).exists()
