"""The console logging every process shares, for ``logging.config.dictConfig``: the Django
settings' ``LOGGING`` and the web server's own loggers (``mifumo/web.py``) are built on it.
Imports nothing, so the settings and the web server's master process can both use it."""

from __future__ import annotations

from typing import Any


def console(fmt: str) -> dict[str, Any]:
    """Filters, formatters and the stderr handler ``console`` in format ``fmt`` (json or
    plain), each record carrying the id of its request and no secret of its path
    (mifumo.logging)."""
    return {
        "filters": {
            "request_id": {"()": "mifumo.logging.RequestIdFilter"},
            "secret_paths": {"()": "mifumo.logging.SecretPathFilter"},
        },
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
            "json": {"()": "mifumo.logging.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": fmt,
                "filters": ["request_id", "secret_paths"],
            }
        },
    }
