"""Failed sign-ins per username and client address, counted in the shared cache.

Counting the pair (not the username alone) means nobody can lock a real user out from
elsewhere, while one address guessing one user's password is stopped after a few tries.
The window is fixed: it starts at the first failure and the count expires with it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from django.core.cache import cache

logger = logging.getLogger(__name__)

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60


@dataclass(frozen=True)
class LoginThrottle:
    username: str
    address: str

    @property
    def _key(self) -> str:
        # Hashed: usernames may hold characters a cache backend refuses in keys.
        ident = f"{self.username.strip().lower()}\x00{self.address}".encode()
        return f"dashboard-login:{hashlib.sha256(ident).hexdigest()}"

    def failures(self) -> int:
        try:
            return int(cache.get(f"{self._key}:n") or 0)
        except Exception:  # noqa: BLE001 - sign-in keeps working while the cache is down
            logger.warning("login throttle cache unavailable", exc_info=True)
            return 0

    def blocked(self) -> bool:
        return self.failures() >= MAX_FAILURES

    def retry_after(self) -> int:
        """Seconds until the window that blocks this pair ends."""
        try:
            started = float(cache.get(f"{self._key}:t") or time.time())
        except Exception:  # noqa: BLE001
            started = time.time()
        return max(int(started + WINDOW_SECONDS - time.time()), 1)

    def fail(self) -> int:
        # add + incr are atomic in Redis, so parallel guesses cannot undercount.
        try:
            cache.add(f"{self._key}:t", time.time(), WINDOW_SECONDS)
            cache.add(f"{self._key}:n", 0, WINDOW_SECONDS)
            return int(cache.incr(f"{self._key}:n"))
        except ValueError:
            # The count expired between add and incr: this failure opens a new window.
            cache.set(f"{self._key}:n", 1, WINDOW_SECONDS)
            return 1
        except Exception:  # noqa: BLE001
            logger.warning("login throttle cache unavailable", exc_info=True)
            return 0

    def reset(self) -> None:
        try:
            cache.delete_many([f"{self._key}:n", f"{self._key}:t"])
        except Exception:  # noqa: BLE001
            logger.warning("login throttle cache unavailable", exc_info=True)
