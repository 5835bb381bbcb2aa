"""The web service: the WSGI application under granian (a Rust HTTP server), as the container,
the Procfile and the benchmarks run it.

    python -m mifumo.web [--host H] [--port P] [--workers N] [--threads T]

Read from the environment (the options win): HOST, PORT (0.0.0.0:8001), WEB_WORKERS (2
processes), WEB_THREADS (4 threads each run the application), WEB_MAX_RSS_MB (1024: a worker
grown past it is replaced gracefully, which bounds a slow leak; 0 turns it off), LOG_FORMAT
(json unless DEBUG), LOG_LEVEL (INFO). The access log is Django's (``mifumo.access``, with the
request id), so granian's own is off. A worker that dies is started again; SIGTERM lets the
requests in flight finish, then stops.

granian parses HTTP in Rust and calls the application from a few Python threads per process;
next to gunicorn's threaded workers the send benchmark measured 15–25% less CPU per send and a
99th percentile about a third lower (bench/README.md).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from granian.server import MPServer

from mifumo import log_config
from mifumo.env import as_bool

TARGET = "mifumo.wsgi:application"


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """The server's own loggers, through the application's console handler and format."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        **log_config.console(fmt),
        "loggers": {
            "_granian": {"level": level, "handlers": ["console"], "propagate": False},
            "granian.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }


def server(argv: list[str] | None = None, env: dict[str, str] | None = None) -> MPServer:
    env = dict(os.environ if env is None else env)
    parser = argparse.ArgumentParser(prog="python -m mifumo.web", description=__doc__)

    def whole(name: str, default: int) -> int:
        raw = env.get(name, "").strip() or str(default)
        try:
            return int(raw)
        except ValueError:
            parser.error(f"{name} must be a whole number, got {raw!r}")

    parser.add_argument("--host", default=env.get("HOST", "0.0.0.0"))  # noqa: S104
    parser.add_argument("--port", type=int, default=whole("PORT", 8001))
    parser.add_argument("--workers", type=int, default=whole("WEB_WORKERS", 2))
    parser.add_argument("--threads", type=int, default=whole("WEB_THREADS", 4))
    parser.add_argument("--max-rss-mb", type=int, default=whole("WEB_MAX_RSS_MB", 1024))
    args = parser.parse_args(argv)
    if args.workers < 1 or args.threads < 1 or args.max_rss_mb < 0:
        parser.error("--workers and --threads must be at least 1, --max-rss-mb at least 0")
    level = env.get("LOG_LEVEL", "INFO").strip().upper()
    if level.lower() not in LogLevels.__members__:
        parser.error(f"LOG_LEVEL={level!r} is not a log level")
    # The same default and choices as the settings' LOG_FORMAT.
    try:
        debug = as_bool("DEBUG", env.get("DEBUG", "true"))
    except ImproperlyConfigured as exc:
        parser.error(str(exc))
    default_format = "plain" if debug else "json"
    log_format = env.get("LOG_FORMAT", default_format).strip().lower()
    if log_format not in ("json", "plain"):
        parser.error(f"LOG_FORMAT must be json or plain, got {log_format!r}")
    return MPServer(
        TARGET,
        address=args.host,
        port=args.port,
        interface=Interfaces.WSGI,
        http=HTTPModes.http1,
        websockets=False,
        workers=args.workers,
        blocking_threads=args.threads,
        log_level=LogLevels(level.lower()),
        log_dictconfig=logging_config(level, log_format),
        log_access=False,
        respawn_failed_workers=True,
        workers_max_rss=args.max_rss_mb or None,
        workers_kill_timeout=30,
    )


def main() -> None:
    server().serve()


if __name__ == "__main__":
    main()
