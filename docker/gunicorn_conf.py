"""gunicorn settings for the web service, read from the environment.

HOST, PORT (0.0.0.0:8001), WEB_WORKERS (2 processes), WEB_THREADS (8 threads each),
WEB_TIMEOUT (30 s), LOG_FORMAT (json unless DEBUG), LOG_LEVEL (INFO). The access log is Django's
(``mifumo.access``, with the request id), so gunicorn's own is off.
"""

from __future__ import annotations

import os
from typing import Any

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8001')}"  # noqa: S104
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "8"))
worker_class = "gthread"
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# Recycling workers now and then bounds the damage of a slow leak.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "20000"))
max_requests_jitter = max_requests // 10
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "INFO").lower()
# The heartbeat file on a memory file system: a container's overlay disk can stall it.
if os.path.isdir("/dev/shm"):  # noqa: S108 - only gunicorn's own heartbeat files go there
    worker_tmp_dir = "/dev/shm"  # noqa: S108

# The same default as the Django settings: JSON unless DEBUG is on.
_debug = os.environ.get("DEBUG", "true").strip().lower() in {"1", "true", "yes", "on"}
_format = os.environ.get("LOG_FORMAT", "plain" if _debug else "json").strip().lower()
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "mifumo.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if _format == "json" else "plain",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["console"], "propagate": False},
        # Django writes the access line itself (mifumo.access), with the request id.
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
    },
}


def child_exit(server: Any, worker: Any) -> None:
    # A dead worker's live gauges must stop counting; its counters stay in the totals.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
