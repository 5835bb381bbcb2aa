"""Setup shared by the benchmarks that drive Mifumo's code in their own process (dispatch,
receipts, webhooks) rather than over HTTP: the database, migrations and empty queues."""

from __future__ import annotations

import contextlib
from urllib.parse import urlparse

QUEUES = ("dispatch", "receipts", "webhooks", "default")


def ensure_database(url: str) -> None:
    """Create the database named by ``url`` when it does not exist yet."""
    import psycopg

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def django_setup() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", "--noinput", verbosity=0)


def purge_queues(queues: tuple[str, ...] = QUEUES) -> None:
    from mifumo.celery import app

    with app.connection_for_write() as conn:
        for queue in queues:
            # A queue never declared is empty already.
            with contextlib.suppress(Exception):
                conn.default_channel.queue_purge(queue)  # type: ignore[attr-defined]
