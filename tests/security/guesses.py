"""Many sign-in attempts at once, as a guesser with many connections makes them."""

from __future__ import annotations

import threading
from typing import Any

from django.contrib.auth.signals import user_login_failed
from django.db import connection
from django.test import Client


def parallel_posts(url: str, data: dict[str, str], count: int) -> tuple[list[int], int]:
    """POST ``count`` times at once from one address; the statuses and how many passwords
    were actually checked (and found wrong)."""
    checked = 0
    lock = threading.Lock()
    start = threading.Barrier(count)

    def failed(**_: Any) -> None:
        nonlocal checked
        with lock:
            checked += 1

    statuses: list[int] = []

    def guess() -> None:
        client = Client(REMOTE_ADDR="203.0.113.50")
        start.wait()
        try:
            response = client.post(url, data)
        finally:
            connection.close()
        with lock:
            statuses.append(response.status_code)

    user_login_failed.connect(failed, dispatch_uid="count-parallel-guesses")
    try:
        threads = [threading.Thread(target=guess) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        user_login_failed.disconnect(dispatch_uid="count-parallel-guesses")
    return statuses, checked
