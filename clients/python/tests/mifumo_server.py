"""The server the client's tests talk to: the suite's reliability stack (web server, Celery) on
the test database, with what the client's tests need on top."""

from __future__ import annotations

import socket
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from tests.reliability.services import Stack

MIFUMO = Path(sys.executable).parent / "mifumo"  # the command's installed entry point


def server_env(**extra: str) -> dict[str, str]:
    """What the server processes need besides the stack's defaults: the test process's secrets
    (keys made here must verify there), receivers on 127.0.0.1, quick simulated receipts."""
    env = {
        "SECRET_KEY": settings.SECRET_KEY,
        "MIFUMO_KEY_HMAC_SECRET": settings.MIFUMO_KEY_HMAC_SECRET,
        "MIFUMO_WEBHOOK_ALLOW_PRIVATE": "true",
        "MIFUMO_WEBHOOK_TIMEOUT": "3",
        "MIFUMO_SIMULATOR_DELAY": "0.3",
        # Account ids start again with every test database; rate-limit counters of earlier
        # runs must not count against the new accounts.
        "CACHE_KEY_PREFIX": f"client-tests-{uuid.uuid4().hex}",
    }
    if settings.MIFUMO_ENCRYPTION_KEY:
        env["MIFUMO_ENCRYPTION_KEY"] = settings.MIFUMO_ENCRYPTION_KEY
    env.update(extra)
    return env


@dataclass
class Server:
    url: str
    stack: Stack

    def logs(self) -> str:
        return self.stack.logs()


@contextmanager
def mifumo_server(
    workdir: Path, database_url: str, redis_url: str, *, worker: bool = True
) -> Iterator[Server]:
    """The web server (and a Celery worker on every queue) on ``database_url``; stopped on exit."""
    stack = Stack(workdir, database_url, redis_url)
    env = server_env(REDIS_URL=redis_url)
    try:
        _process, url = stack.web(workers=2, **env)
        if worker:
            stack.worker("worker", **env)
        yield Server(url, stack)
    finally:
        stack.stop_all()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
