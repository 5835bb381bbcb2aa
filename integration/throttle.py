"""Sign-in throttles for the dashboard, Django admin and the second-factor step, counted in
the shared cache.

Every attempt is counted *before* the password (or code) is checked, with one atomic
increment per counter, so parallel guesses cannot slip past the limit; a success takes its
own attempt back. Two counters share each attempt:

- the username and client address together, ``MAX_FAILURES`` a window: one address guessing
  one user's password is stopped after a few tries, while nobody elsewhere can lock the real
  user out;
- the client address alone, ``MAX_FAILURES_PER_ADDRESS`` a window over any usernames: one
  address spraying a common password over many usernames is stopped too.

A window is fixed: it starts at the first attempt and the counts expire with it. The
dashboard and Django admin share the password counters (one budget for both doors); codes
have their own. While the cache is unreachable sign-in keeps working (logged).
"""

from __future__ import annotations

import hashlib
import logging
import time

from django.core.cache import cache

from mifumo.counters import count_and_mark

logger = logging.getLogger(__name__)

MAX_FAILURES = 5
MAX_FAILURES_PER_ADDRESS = 30
WINDOW_SECONDS = 15 * 60


class LoginThrottle:
    """One sign-in attempt of ``username`` from ``address``; ``scope`` names the step
    ("password" or "code")."""

    def __init__(self, username: str, address: str, scope: str = "password") -> None:
        self.username = username
        # Hashed: usernames may hold characters a cache backend refuses in keys.
        ident = f"{scope}\x00{username.strip().lower()}\x00{address}".encode()
        self._pair = f"login:{hashlib.sha256(ident).hexdigest()}"
        self._address = f"login:{scope}:{hashlib.sha256(address.encode()).hexdigest()}"
        self._counts = (0, 0)

    def allow(self) -> bool:
        """Count this attempt; False when it is over a limit and must be refused unchecked."""
        try:
            for key in (self._pair, self._address):
                cache.add(f"{key}:t", time.time(), WINDOW_SECONDS)
            counts, _ = count_and_mark(
                [(f"{self._pair}:n", WINDOW_SECONDS), (f"{self._address}:n", WINDOW_SECONDS)]
            )
        except Exception:  # noqa: BLE001 - sign-in keeps working while the cache is down
            logger.warning("login throttle cache unavailable", exc_info=True)
            return True
        self._counts = (counts[0], counts[1])
        return not self._over(strictly=True)

    def _over(self, *, strictly: bool) -> bool:
        pair, address = self._counts
        if strictly:
            return pair > MAX_FAILURES or address > MAX_FAILURES_PER_ADDRESS
        return pair >= MAX_FAILURES or address >= MAX_FAILURES_PER_ADDRESS

    def exhausted(self) -> bool:
        """After a failed attempt: True when it was the last one the window allows."""
        return self._over(strictly=False)

    def succeeded(self) -> None:
        """Forget the pair's failures, and take this attempt off the address's count."""
        try:
            cache.delete_many([f"{self._pair}:n", f"{self._pair}:t"])
            cache.decr(f"{self._address}:n")
        except ValueError:
            pass  # the address's window ended meanwhile
        except Exception:  # noqa: BLE001
            logger.warning("login throttle cache unavailable", exc_info=True)

    def retry_after(self) -> int:
        """Seconds until the window that blocks this attempt ends."""
        pair, _address = self._counts
        key = self._pair if pair >= MAX_FAILURES else self._address
        try:
            started = float(cache.get(f"{key}:t") or time.time())
        except Exception:  # noqa: BLE001
            started = time.time()
        return max(int(started + WINDOW_SECONDS - time.time()), 1)
