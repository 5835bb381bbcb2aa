"""Wait until the database and Redis answer, up to SERVICES_WAIT_SECONDS (default 60); exit 1
if they never do."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mifumo.settings")


def _database() -> None:
    from django.db import connections

    connection = connections["default"]
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


def _redis() -> None:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def main() -> int:
    import django

    django.setup()
    from mifumo.env import envfloat

    deadline = time.monotonic() + envfloat("SERVICES_WAIT_SECONDS", 60.0)
    for name, check in (("database", _database), ("redis", _redis)):
        while True:
            try:
                check()
                break
            except Exception as exc:  # noqa: BLE001 - anything means not up yet
                if time.monotonic() > deadline:
                    sys.stderr.write(f"wait_for_services: {name} unreachable: {exc}\n")
                    return 1
                sys.stdout.write(
                    f"wait_for_services: waiting for the {name} ({type(exc).__name__})\n"
                )
                time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
