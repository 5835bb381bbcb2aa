"""One-time tokens claimed atomically: the form that moves money or mints a key carries one,
and only the first request that claims it does the work (a double click sends two requests
at once, which a session's record alone cannot tell apart)."""

from __future__ import annotations

import logging
import secrets

from django.core.cache import cache

logger = logging.getLogger(__name__)

# How long a claimed token is remembered.
SECONDS = 24 * 3600


def new_token() -> str:
    return secrets.token_urlsafe(16)


def first_use(key: str) -> bool:
    """True for the first claim of ``key`` (one ``SET NX`` in the cache), False after. With
    the cache down it cannot tell, and says True (logged): the caller's other guards stand."""
    try:
        return bool(cache.add(f"once:{key}", 1, SECONDS))
    except Exception:  # noqa: BLE001 - see the docstring
        logger.warning("cannot claim a one-time token in the cache: it is down")
        return True
