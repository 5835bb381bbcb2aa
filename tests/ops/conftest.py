"""Fixtures for running the deployment's services: a database of their own, a clean broker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from mifumo.celery import app as celery_app
from mifumo.metrics import queue_names


def _admin_url(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql", path=f"/{database}"))


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of DATABASE_URL, as a fresh install has;
    dropped afterwards. Yields its DATABASE_URL."""
    base = os.environ["DATABASE_URL"]
    name = f"{urlsplit(base).path.lstrip('/') or 'mifumo'}_ops_stack"
    admin = _admin_url(base, "postgres")

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    drop()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(base)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        drop()


def purge_queues() -> None:
    with celery_app.connection_for_write() as conn:
        for queue in queue_names():
            try:
                conn.default_channel.queue_purge(queue)  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001, S112 - a queue not declared yet is empty
                continue


@pytest.fixture
def clean_broker() -> Iterator[str]:
    """The tests' Redis, with no task of an earlier test waiting in it."""
    purge_queues()
    try:
        yield os.environ["REDIS_URL"]
    finally:
        purge_queues()
